#pragma once
// A small regular file in a private temporary directory, removed on destruction: handlers
// check that kernels and drives exist, so their unit tests need real paths.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace microvm::testing {

class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name) {
    char dir[] = "/tmp/microvm-scratch-XXXXXX";
    if (::mkdtemp(dir)) dir_ = dir;
    path_ = dir_ + "/" + name;
    std::ofstream(path_) << "x";
  }
  ~ScratchFile() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace microvm::testing
