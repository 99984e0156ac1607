#pragma once
// `microvm bench ...` runs the separate `microvm-bench` tool, git-style: the benchmark code
// (scenarios, harnesses, report writers) stays out of the binary that runs VMs.
namespace microvm {

// Replaces this process with microvm-bench, passing argv[1..] (argv[0] is "bench"). The
// tool is looked for next to this executable (/proc/self/exe): DIR/microvm-bench as
// installed, then DIR/bench/microvm-bench as built. Returns only on failure, with an exit
// code, after one line on stderr saying what is missing and where it looked.
int exec_bench_tool(int argc, char** argv);

}  // namespace microvm
