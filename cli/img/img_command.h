#pragma once
// `microvm img SUBCOMMAND ...`: create, info, check, resize, convert (qemu-img compatible
// images and exit codes). argv[0] is "img". Returns the process exit code.
int run_img_command(int argc, char** argv);
