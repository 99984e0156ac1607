#include "base/mapped_file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/fd.h"

namespace microvm {

Result<MappedFile> MappedFile::open(const std::string& path, const char* what, uint64_t limit) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(std::string("cannot open ") + what + " " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return fail_errno(std::string("cannot stat ") + what + " " + path);
  if (!S_ISREG(st.st_mode)) return fail(std::string(what) + " " + path + " is not a regular file");
  auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return fail(std::string(what) + " " + path + " is empty");
  if (size > limit)
    return fail(std::string(what) + " " + path + " is too large (" + std::to_string(size >> 20) + " MiB)");
  auto m = TRY(Mapping::map(size, PROT_READ, MAP_PRIVATE, fd.get(), 0, what));
  return MappedFile(std::move(m), size);
}

}  // namespace microvm
