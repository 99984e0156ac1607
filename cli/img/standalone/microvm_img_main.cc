#include <vector>

#include "cli/img/img_command.h"

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  static char name[] = "img";
  args[0] = name;
  return run_img_command(static_cast<int>(args.size()), args.data());
}
