# The version, git commit and build type compiled into common/build_info.cc (pgherald version,
# pgherald_build_info). The commit is read at configure time; a build outside git says "unknown".
# Configure runs again when HEAD moves (the git log of HEAD is a configure dependency).
set(PGHERALD_GIT_COMMIT "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _pgh_commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _pgh_rc ERROR_QUIET)
  if(_pgh_rc EQUAL 0 AND _pgh_commit)
    set(PGHERALD_GIT_COMMIT "${_pgh_commit}")
    execute_process(COMMAND ${GIT_EXECUTABLE} diff --quiet HEAD --
                    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} RESULT_VARIABLE _pgh_dirty ERROR_QUIET)
    if(NOT _pgh_dirty EQUAL 0)
      string(APPEND PGHERALD_GIT_COMMIT "-dirty")
    endif()
    execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --git-dir
                    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                    OUTPUT_VARIABLE _pgh_git_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_pgh_git_dir AND NOT IS_ABSOLUTE "${_pgh_git_dir}")
      set(_pgh_git_dir "${PROJECT_SOURCE_DIR}/${_pgh_git_dir}")
    endif()
    if(EXISTS "${_pgh_git_dir}/logs/HEAD")
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pgh_git_dir}/logs/HEAD")
    endif()
  endif()
endif()
set(PGHERALD_BUILD_TYPE "${CMAKE_BUILD_TYPE}")
if(NOT PGHERALD_BUILD_TYPE)
  set(PGHERALD_BUILD_TYPE "unspecified")
endif()
configure_file(${PROJECT_SOURCE_DIR}/common/build_info_values.h.in
               ${PROJECT_BINARY_DIR}/generated/build_info_values.h @ONLY)
