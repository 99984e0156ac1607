#include "boot/image_boot/file_tree.h"

#include <gtest/gtest.h>

#include <map>

namespace microvm::image_boot {
namespace {

// A tree in memory: paths to files, directories and symlinks.
class FakeTree final : public FileTree {
 public:
  FakeTree() { add("/", Node::Kind::kDir, ""); }
  void add(const std::string& path, Node::Kind kind, std::string data) {
    uint64_t id = nodes_.size() + 1;
    nodes_[id] = {kind, id, data.size()};
    data_[id] = std::move(data);
    ids_[path] = id;
    if (path != "/") {
      auto slash = path.rfind('/');
      std::string parent = slash == 0 ? "/" : path.substr(0, slash);
      children_[ids_.at(parent)][path.substr(slash + 1)] = id;
    }
  }
  std::string fs_type() const override { return "fake"; }
  std::string fs_uuid() const override { return "u"; }
  std::string label() const override { return ""; }
  Node root() override { return nodes_.at(1); }
  Result<std::optional<Node>> lookup(const Node& dir, std::string_view name) override {
    auto& c = children_[dir.id];
    auto it = c.find(std::string(name));
    if (it == c.end()) return std::optional<Node>{};
    return std::optional<Node>(nodes_.at(it->second));
  }
  Result<std::string> read_link(const Node& n) override { return data_.at(n.id); }
  Result<std::vector<std::byte>> read(const Node& n) override {
    const auto& s = data_.at(n.id);
    auto* p = reinterpret_cast<const std::byte*>(s.data());
    return std::vector<std::byte>(p, p + s.size());
  }
  Result<std::vector<std::string>> list(const Node& dir) override {
    std::vector<std::string> out{".", ".."};
    for (auto& [k, v] : children_[dir.id]) out.push_back(k);
    return out;
  }

 private:
  std::map<uint64_t, Node> nodes_;
  std::map<uint64_t, std::string> data_;
  std::map<std::string, uint64_t> ids_;
  std::map<uint64_t, std::map<std::string, uint64_t>> children_;
};

using K = Node::Kind;

TEST(FileTree, SymlinksResolveInsideTheTree) {
  FakeTree t;
  t.add("/boot", K::kDir, "");
  t.add("/boot/vmlinuz-1", K::kFile, "KERNEL");
  t.add("/vmlinuz", K::kSymlink, "boot/vmlinuz-1");
  t.add("/abs", K::kSymlink, "/boot/vmlinuz-1");
  t.add("/boot/up", K::kSymlink, "../boot/./vmlinuz-1");
  t.add("/bootlink", K::kSymlink, "/boot");
  for (const char* p : {"/vmlinuz", "/abs", "/boot/up", "/bootlink/vmlinuz-1", "bootlink/../boot/vmlinuz-1"}) {
    auto text = read_text(t, p, 100);
    ASSERT_TRUE(text) << p << ": " << text.error().what;
    EXPECT_EQ(*text, "KERNEL") << p;
  }
  auto names = list_dir(t, "/bootlink");
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"up", "vmlinuz-1"}));
}

TEST(FileTree, LoopsEscapesAndLimitsFailClearly) {
  FakeTree t;
  t.add("/a", K::kSymlink, "b");
  t.add("/b", K::kSymlink, "/a");
  t.add("/self", K::kSymlink, "self");
  t.add("/out", K::kSymlink, "../../etc/passwd");
  t.add("/big", K::kFile, std::string(1000, 'x'));
  t.add("/dir", K::kDir, "");
  auto r = read_text(t, "/a", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ELOOP);
  EXPECT_NE(r.error().what.find("symbolic links"), std::string::npos);
  r = read_text(t, "/self", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ELOOP);
  r = read_text(t, "/out", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EXDEV);
  EXPECT_NE(r.error().what.find("escapes"), std::string::npos);
  r = read_text(t, "/dir/../../x", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EXDEV);
  r = read_text(t, "/big", 999);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EFBIG);
  EXPECT_TRUE(read_text(t, "/big", 1000));
  r = read_text(t, "/dir", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EISDIR);
  auto present = is_file(t, "/nothing/here");
  ASSERT_TRUE(present);
  EXPECT_FALSE(*present);
  EXPECT_FALSE(is_file(t, "/a"));  // a loop is an error, not "absent"
}

}  // namespace
}  // namespace microvm::image_boot
