add_library(pgherald_warnings INTERFACE)
add_library(pgherald::warnings ALIAS pgherald_warnings)
target_compile_options(pgherald_warnings INTERFACE
  # -Wnull-dereference is left out: at -O2 GCC 12 reports false positives inside libstdc++.
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wformat=2
  $<$<BOOL:${PGHERALD_WERROR}>:-Werror>)
