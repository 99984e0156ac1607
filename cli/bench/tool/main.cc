// `microvm-bench`, also run as `microvm bench` (cli/bench_launcher.h).
#include "cli/bench/bench_command.h"

int main(int argc, char** argv) {
  // run_bench_command expects argv[0] == "bench".
  char name[] = "bench";
  argv[0] = name;
  return microvm::run_bench_command(argc, argv);
}
