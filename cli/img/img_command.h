#pragma once
// `microvm img SUBCOMMAND ...`: create, info, check, resize, convert, map, compare, commit,
// rebase (qemu-img compatible images, options, output and exit codes). argv[0] is "img". Returns the process exit code.
int run_img_command(int argc, char** argv);
