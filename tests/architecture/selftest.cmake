# Shows that check_layers.cmake can fail: against small trees written here (under WORK) and the
# real layer table (TABLE), a clean tree passes, a planted upward include fails naming the file and
# both layers, a file outside every layer fails, and a table with a circle fails.
#   cmake -DCHECKER=<check_layers.cmake> -DTABLE=<docs/architecture.md> -DWORK=<scratch dir>
#         -P selftest.cmake
cmake_minimum_required(VERSION 3.20)

function(run_check root table expect_ok must_contain)
  execute_process(COMMAND "${CMAKE_COMMAND}" -DROOT=${root} -DTABLE=${table} -P "${CHECKER}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "selftest: expected ${root} to pass, it failed:\n${all}")
  elseif(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "selftest: expected ${root} to fail, it passed:\n${all}")
  endif()
  foreach(text IN LISTS must_contain)
    string(FIND "${all}" "${text}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "selftest: the output for ${root} lacks \"${text}\":\n${all}")
    endif()
  endforeach()
endfunction()

file(REMOVE_RECURSE "${WORK}")

# A clean tree: the orchestrator includes the cluster view and the model, as the real code does.
set(clean "${WORK}/clean")
file(WRITE "${clean}/common/model/cluster_model.h" "#pragma once\n#include \"common/base/status.h\"\n")
file(WRITE "${clean}/common/base/status.h" "#pragma once\n#include <string>\n")
file(WRITE "${clean}/common/logging.h" "#pragma once\n#include \"common/base/status.h\"\n")
file(WRITE "${clean}/publishers/view/cluster_view.h" "#include \"common/model/cluster_model.h\"\n")
file(WRITE "${clean}/orchestrator/metrics.h"
     "#include \"publishers/view/cluster_view.h\"\n#include \"common/logging.h\"\n")
run_check("${clean}" "${TABLE}" TRUE "architecture check: ")

# The same tree with one upward include planted in the daemons' logging header.
set(upward "${WORK}/upward")
file(COPY "${clean}/" DESTINATION "${upward}")
file(APPEND "${upward}/common/logging.h" "#include \"orchestrator/metrics.h\"\n")
run_check("${upward}" "${TABLE}" FALSE
          "common/logging.h: #include \"orchestrator/metrics.h\";may not include layer orchestrator")

# The model (below the daemons' stack) reaching up into it.
set(model_up "${WORK}/model_up")
file(COPY "${clean}/" DESTINATION "${model_up}")
file(APPEND "${model_up}/common/model/cluster_model.h" "#include \"common/logging.h\"\n")
run_check("${model_up}" "${TABLE}" FALSE "common/model/cluster_model.h")

# The watch daemon and its sink plug-ins: a sink may include the sink interface, not the daemon's
# internals, and the daemon may include no sink.
set(sinks "${WORK}/sinks")
file(COPY "${clean}/" DESTINATION "${sinks}")
file(WRITE "${sinks}/clients/watch/sink.h" "#pragma once\n#include \"common/base/status.h\"\n")
file(WRITE "${sinks}/clients/watch/sink_worker.h" "#pragma once\n#include \"clients/watch/sink.h\"\n")
file(WRITE "${sinks}/sinks/exec/exec_sink.h" "#pragma once\n#include \"clients/watch/sink.h\"\n")
run_check("${sinks}" "${TABLE}" TRUE "architecture check: ")
file(APPEND "${sinks}/sinks/exec/exec_sink.h" "#include \"clients/watch/sink_worker.h\"\n")
file(APPEND "${sinks}/clients/watch/sink_worker.h" "#include \"sinks/exec/exec_sink.h\"\n")
run_check("${sinks}" "${TABLE}" FALSE
          "sinks/exec/exec_sink.h: #include \"clients/watch/sink_worker.h\";may not include layer watch;clients/watch/sink_worker.h: #include \"sinks/exec/exec_sink.h\";may not include layer sinks")

# A folder no layer owns.
set(stray "${WORK}/stray")
file(COPY "${clean}/" DESTINATION "${stray}")
file(WRITE "${stray}/newfolder/thing.cc" "int x;\n")
run_check("${stray}" "${TABLE}" FALSE "newfolder/thing.cc: in no layer")

# A table whose allowed includes form a circle.
file(WRITE "${WORK}/circle.md" [=[
<!-- layers:begin -->
| layer | folders | may include |
|---|---|---|
| a | `a/` | b |
| b | `b/` | c |
| c | `c/` | a |
<!-- layers:end -->
]=])
file(WRITE "${WORK}/tiny/a/x.h" "#include \"b/y.h\"\n")
file(WRITE "${WORK}/tiny/b/y.h" "\n")
run_check("${WORK}/tiny" "${WORK}/circle.md" FALSE "table: circle a -> b -> c -> a")

message(STATUS "architecture selftest: the check passes a clean tree and fails every planted fault")
