// The replay driver of the default build: runs a harness's LLVMFuzzerTestOneInput over every file
// of the directories named on the command line (the committed corpus, and crashes/<target>/ with
// the minimized inputs of past findings), so each finding stays a regression test without clang.
//
//   fuzz_<target> [--optional DIR] DIR...
//
// A DIR that is missing or holds no file fails (exit 2): a replay that reads nothing proves
// nothing. A DIR after --optional may be missing. A failing input aborts the process; the file
// being run is printed first by the signal handler, so ctest's output names it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// The input being run, for the signal handler (async-signal-safe: a fixed buffer and write()).
char g_current[4096];

void OnFatalSignal(int sig) {
  const char prefix[] = "\nreplay: input that failed: ";
  (void)!::write(2, prefix, sizeof prefix - 1);
  (void)!::write(2, g_current, std::strlen(g_current));
  (void)!::write(2, "\n", 1);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, OnFatalSignal);
  namespace fs = std::filesystem;
  int ran = 0;
  bool optional = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--optional") {
      optional = true;
      continue;
    }
    const fs::path dir(arg);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      if (optional) continue;
      std::fprintf(stderr, "replay: corpus directory %s is missing (expected committed seeds)\n",
                   arg.c_str());
      return 2;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty() && !optional) {
      std::fprintf(stderr, "replay: corpus directory %s holds no file\n", arg.c_str());
      return 2;
    }
    for (const auto& file : files) {
      std::snprintf(g_current, sizeof g_current, "%s", file.c_str());
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
        return 2;
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++ran;
    }
    optional = false;
  }
  std::printf("replay: %d inputs ran without a failure\n", ran);
  return 0;
}
