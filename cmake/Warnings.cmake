add_library(pgherald_warnings INTERFACE)
add_library(pgherald::warnings ALIAS pgherald_warnings)
target_compile_options(pgherald_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wformat=2
  $<$<BOOL:${PGHERALD_WERROR}>:-Werror>)
