// The --cloud-init seed, built by the same functions the CLI calls, read back by the tools that
// are the reference for FAT: dosfstools' fsck.fat (no errors), blkid (TYPE=vfat, LABEL=cidata,
// as cloud-init's NoCloud datasource finds it), mtools (the names cloud-init opens, and their
// bytes), and image_boot's own FAT reader.
#include "cli/cloud_init_seed.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "boot/image_boot/fat_volume.h"

namespace microvm {
namespace {

std::string sh(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (status) *status = st;
  return out;
}

class Dir {
 public:
  Dir() {
    char tmpl[] = "/tmp/microvm-ci-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~Dir() { [[maybe_unused]] int r = system(("rm -rf " + path_).c_str()); }
  std::string file(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << bytes;
    return path_ + "/" + name;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string write_seed(const Dir& d, const std::vector<FatFile>& files) {
  auto image = build_cloud_init_seed(files);
  EXPECT_TRUE(image) << image.error().what;
  if (!image) return "";
  return d.file("seed.img", std::string(reinterpret_cast<const char*>(image->data()), image->size()));
}

std::string mtype(const std::string& img, const std::string& name) {
  return sh("MTOOLS_SKIP_CHECK=1 mtype -i " + img + " ::" + name);
}

TEST(CloudInitSeed, ToolsSeeLabelFilesAndBytes) {
  Dir d;
  std::string user = "#cloud-config\npassword: passw0rd\nchpasswd: { expire: False }\n";
  std::string meta = "instance-id: iid-local01\nlocal-hostname: cloudimg\n";
  std::string net = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";
  auto files = parse_cloud_init_arg("user-data=" + d.file("u", user) + ",meta-data=" + d.file("m", meta) +
                                    ",network-config=" + d.file("n", net));
  ASSERT_TRUE(files) << files.error().what;
  std::string img = write_seed(d, *files);
  ASSERT_FALSE(img.empty());

  int st = -1;
  std::string fsck = sh("fsck.fat -n " + img + " 2>&1", &st);
  EXPECT_EQ(st, 0) << fsck;
  EXPECT_EQ(sh("blkid -p -o value -s TYPE " + img), "vfat\n");
  EXPECT_EQ(sh("blkid -p -o value -s LABEL " + img), "cidata\n");
  EXPECT_NE(sh("MTOOLS_SKIP_CHECK=1 mlabel -s -i " + img + " ::").find("cidata"), std::string::npos);
  // The long names, exactly as cloud-init opens them.
  EXPECT_EQ(sh("MTOOLS_SKIP_CHECK=1 mdir -b -i " + img + " :: | sort"),
            "::/meta-data\n::/network-config\n::/user-data\n");
  EXPECT_EQ(mtype(img, "user-data"), user);
  EXPECT_EQ(mtype(img, "meta-data"), meta);
  EXPECT_EQ(mtype(img, "network-config"), net);

  // image_boot's reader agrees.
  std::ifstream in(img, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  image_boot::MemoryReader part(std::as_bytes(std::span(bytes.data(), bytes.size())));
  auto fs = image_boot::FatVolume::open(part);
  ASSERT_TRUE(fs) << fs.error().what;
  EXPECT_EQ((*fs)->label(), "cidata");
  EXPECT_EQ((*fs)->fat_bits(), 12u);
  EXPECT_EQ(image_boot::read_text(**fs, "/user-data", 1 << 20).value_or("?"), user);
  EXPECT_EQ((*fs)->fs_uuid(), [&] {
    std::string u = sh("blkid -p -o value -s UUID " + img);
    return u.substr(0, u.size() - 1);
  }());
}

TEST(CloudInitSeed, SshKeyAndHostnameWriteTheirOwnUserAndMetaData) {
  Dir d;
  std::string key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKz user@host\n# a comment\n\nssh-rsa AAAAB3 \"odd\" name\n";
  auto files = parse_cloud_init_arg("ssh-key=" + d.file("k.pub", key) + ",hostname=vm-1");
  ASSERT_TRUE(files) << files.error().what;
  std::string img = write_seed(d, *files);
  EXPECT_EQ(mtype(img, "user-data"),
            "#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKz user@host\"\n"
            "  - \"ssh-rsa AAAAB3 \\\"odd\\\" name\"\n");
  std::string meta = mtype(img, "meta-data");
  EXPECT_EQ(meta.rfind("instance-id: iid-microvm-", 0), 0u) << meta;
  EXPECT_NE(meta.find("\nlocal-hostname: vm-1\n"), std::string::npos) << meta;
  // The instance-id follows the contents: another hostname is another instance, the same is the same.
  auto again = parse_cloud_init_arg("ssh-key=" + d.path() + "/k.pub,hostname=vm-1");
  auto other = parse_cloud_init_arg("ssh-key=" + d.path() + "/k.pub,hostname=vm-2");
  ASSERT_TRUE(again && other);
  EXPECT_EQ((*again)[0].data, (*files)[0].data);
  EXPECT_NE((*other)[0].data.substr(0, 41), (*files)[0].data.substr(0, 41));
  // Without anything but a hostname: an empty cloud-config.
  auto bare = parse_cloud_init_arg("hostname=h");
  ASSERT_TRUE(bare);
  EXPECT_EQ((*bare)[1].name, "user-data");
  EXPECT_EQ((*bare)[1].data, "#cloud-config\n");
}

TEST(CloudInitSeed, LargeUserDataSpansClustersAndStaysFat12) {
  Dir d;
  std::string user(5 * 1024 * 1024 + 77, '\0');
  std::mt19937 rng(5);
  for (auto& c : user) c = static_cast<char>(rng());
  auto files = parse_cloud_init_arg("user-data=" + d.file("u", user));
  ASSERT_TRUE(files);
  std::string img = write_seed(d, *files);
  int st = -1;
  std::string fsck = sh("fsck.fat -n " + img + " 2>&1", &st);
  EXPECT_EQ(st, 0) << fsck;
  EXPECT_EQ(mtype(img, "user-data"), user);
}

TEST(CloudInitSeed, BadSpecsAreRefusedWithTheReason) {
  Dir d;
  std::string u = d.file("u", "#cloud-config\n");
  struct Case {
    std::string spec, says;
  } cases[] = {
      {"", "expected key=value"},
      {"user-data", "expected key=value"},
      {"userdata=" + u, "unknown key 'userdata'"},
      {"user-data=" + u + ",user-data=" + u, "given twice"},
      {"user-data=" + d.path() + "/missing", "No such file"},
      {"user-data=" + d.path(), "not a regular file"},
      {"user-data=" + u + ",ssh-key=" + u, "ssh-key= writes the user-data itself"},
      {"meta-data=" + u + ",hostname=x", "hostname= writes the meta-data itself"},
      {"hostname=bad_name!", "not a valid host name"},
      {"ssh-key=" + d.file("empty.pub", "# nothing\n"), "holds no key"},
  };
  for (const auto& c : cases) {
    auto r = parse_cloud_init_arg(c.spec);
    ASSERT_FALSE(r) << c.spec;
    EXPECT_NE(r.error().what.find(c.says), std::string::npos) << c.spec << ": " << r.error().what;
  }
}

TEST(CloudInitSeed, SeedFileIsPrivateAndRemoved) {
  auto files = parse_cloud_init_arg("hostname=h");
  ASSERT_TRUE(files);
  auto image = build_cloud_init_seed(*files);
  ASSERT_TRUE(image);
  std::string path;
  {
    auto seed = SeedFile::create(*image);
    ASSERT_TRUE(seed) << seed.error().what;
    path = seed->path();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(static_cast<size_t>(st.st_size), image->size());
    seed->remove();
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
    auto second = SeedFile::create(*image);
    ASSERT_TRUE(second);
    path = second->path();
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // the destructor removed the second one
}

}  // namespace
}  // namespace microvm
