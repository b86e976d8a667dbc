# Every dependency comes from Debian's packages (see scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(PostgreSQL REQUIRED)
find_package(Poco REQUIRED COMPONENTS Foundation Net Util JSON)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
# Header-only, so the client library gains no run-time dependency from it.
find_package(nlohmann_json 3.11 REQUIRED)

# The ZooKeeper C client ships neither a CMake package nor a pkg-config file.
find_path(ZOOKEEPER_INCLUDE_DIR zookeeper/zookeeper.h REQUIRED)
find_library(ZOOKEEPER_MT_LIBRARY zookeeper_mt REQUIRED)
if(NOT TARGET ZooKeeper::zookeeper_mt)
  add_library(ZooKeeper::zookeeper_mt UNKNOWN IMPORTED)
  set_target_properties(ZooKeeper::zookeeper_mt PROPERTIES
    IMPORTED_LOCATION "${ZOOKEEPER_MT_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ZOOKEEPER_INCLUDE_DIR}"
    # The synchronous API is only declared with THREADED.
    INTERFACE_COMPILE_DEFINITIONS "THREADED"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
