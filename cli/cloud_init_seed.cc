#include "cli/cloud_init_seed.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "base/fd.h"

namespace microvm {
namespace {

Result<std::string> read_small_file(const std::string& what, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail_errno(what + "=" + path);
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, what + "=" + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ENOENT, what + "=" + path + ": cannot be read");
  in.seekg(0, std::ios::end);
  auto size = static_cast<uint64_t>(in.tellg());
  if (size > kMaxCloudInitFileBytes) return fail(EFBIG, what + "=" + path + ": larger than 16 MiB");
  in.seekg(0);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() > kMaxCloudInitFileBytes) return fail(EFBIG, what + "=" + path + ": larger than 16 MiB");
  return s;
}

std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

uint64_t fnv1a64(const std::string& s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool valid_hostname(const std::string& h) {
  if (h.empty() || h.size() > 63 || h.front() == '-' || h.back() == '-') return false;
  for (char c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  return true;
}

}  // namespace

Result<std::vector<FatFile>> parse_cloud_init_arg(const std::string& spec) {
  std::optional<std::string> user_data, meta_data, network_config, ssh_keys, hostname;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto eq = item.find('=');
    if (eq == std::string::npos || eq + 1 == item.size())
      return fail(EINVAL,
                  "expected key=value, got '" + item + "' (user-data, meta-data, network-config, ssh-key, hostname)");
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    auto once = [&](std::optional<std::string>& slot) -> Result<void> {
      if (slot) return fail(EINVAL, key + "= given twice");
      slot = key == "hostname" ? value : TRY(read_small_file(key, value));
      return {};
    };
    if (key == "user-data")
      TRY(once(user_data));
    else if (key == "meta-data")
      TRY(once(meta_data));
    else if (key == "network-config")
      TRY(once(network_config));
    else if (key == "ssh-key")
      TRY(once(ssh_keys));
    else if (key == "hostname")
      TRY(once(hostname));
    else
      return fail(EINVAL, "unknown key '" + key + "' (user-data, meta-data, network-config, ssh-key, hostname)");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (user_data && ssh_keys)
    return fail(EINVAL,
                "ssh-key= writes the user-data itself; put the key in your user-data (ssh_authorized_keys) instead");
  if (meta_data && hostname)
    return fail(EINVAL, "hostname= writes the meta-data itself; put local-hostname in your meta-data instead");
  if (hostname && !valid_hostname(*hostname)) return fail(EINVAL, "hostname=" + *hostname + ": not a valid host name");
  if (!user_data) {
    std::string u = "#cloud-config\n";
    if (ssh_keys) {
      std::string keys;
      size_t i = 0;
      while (i < ssh_keys->size()) {
        size_t e = ssh_keys->find('\n', i);
        if (e == std::string::npos) e = ssh_keys->size();
        std::string line = ssh_keys->substr(i, e - i);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty() && line.front() != '#') keys += "  - " + yaml_quoted(line) + "\n";
        i = e + 1;
      }
      if (keys.empty()) return fail(EINVAL, "ssh-key: the file holds no key");
      u += "ssh_authorized_keys:\n" + keys;
    }
    user_data = u;
  }
  if (!meta_data) {
    uint64_t h = fnv1a64(*user_data);
    h = fnv1a64(network_config.value_or(""), h);
    h = fnv1a64(hostname.value_or(""), h);
    char id[40];
    std::snprintf(id, sizeof id, "iid-microvm-%016llx", static_cast<unsigned long long>(h));
    meta_data = "instance-id: " + std::string(id) + "\n" + (hostname ? "local-hostname: " + *hostname + "\n" : "");
  }
  std::vector<FatFile> files{{"meta-data", *meta_data}, {"user-data", *user_data}};
  if (network_config) files.push_back({"network-config", *network_config});
  return files;
}

Result<std::vector<std::byte>> build_cloud_init_seed(const std::vector<FatFile>& files) {
  std::string all;
  for (const auto& f : files) all += f.name + '\0' + f.data;
  return build_fat_image(files, kCloudInitLabel, static_cast<uint32_t>(fnv1a64(all)));
}

Result<SeedFile> SeedFile::create(const std::vector<std::byte>& image) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/microvm-cidata-XXXXXX";
  int raw = ::mkostemp(path.data(), O_CLOEXEC);
  if (raw < 0) return fail_errno("--cloud-init: creating " + path);
  Fd fd(raw);
  SeedFile seed(path);
  size_t done = 0;
  while (done < image.size()) {
    ssize_t n = ::write(fd.get(), image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_errno("--cloud-init: writing " + path);
    done += static_cast<size_t>(n);
  }
  return seed;
}

void SeedFile::remove() {
  if (path_.empty()) return;
  ::unlink(path_.c_str());
  path_.clear();
}

}  // namespace microvm
