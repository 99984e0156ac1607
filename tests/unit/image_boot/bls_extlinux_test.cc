#include <gtest/gtest.h>

#include <map>

#include "boot/image_boot/bls_config.h"
#include "boot/image_boot/extlinux_config.h"

namespace microvm::image_boot {
namespace {

BlsEntry entry(const std::string& file, const std::string& text) {
  auto e = parse_bls_entry(text, file);
  EXPECT_TRUE(e);
  return *e;
}

TEST(Bls, NewestVersionFirstAndLoaderConfDefault) {
  std::vector<BlsEntry> es = {
      entry("fedora-6.9.0.conf",
            "title Fedora 6.9\nlinux /vmlinuz-6.9.0\ninitrd /initramfs-6.9.0.img\noptions root=UUID=u ro\n"),
      entry("fedora-6.10.0.conf",
            "title Fedora 6.10\nversion 6.10.0\nlinux /vmlinuz-6.10.0\ninitrd /a.img\ninitrd /b.img\n"
            "options root=UUID=u\noptions ro rhgb\n"),
      entry("fedora-rescue.conf", "title Rescue\nefi /EFI/Linux/rescue.efi\n"),
  };
  auto c = choose_bls_entry(es, "");
  ASSERT_TRUE(c) << c.error().what;
  EXPECT_EQ(c->title, "Fedora 6.10");
  EXPECT_EQ(c->source, "fedora-6.10.0.conf");
  EXPECT_EQ(c->kernel.path, "/vmlinuz-6.10.0");
  ASSERT_EQ(c->initrds.size(), 2u);
  EXPECT_EQ(c->initrds[1].path, "/b.img");
  EXPECT_EQ(c->options, "root=UUID=u ro rhgb");
  c = choose_bls_entry(es, "timeout 3\ndefault fedora-6.9*\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->title, "Fedora 6.9");
  auto none = choose_bls_entry({es[2]}, "");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().what.find("UKI"), std::string::npos);
}

ReadConfigFile reader(std::map<std::string, std::string>& files) {
  return [&files](const std::string& p) -> Result<std::optional<std::string>> {
    auto it = files.find(p);
    if (it == files.end()) return std::optional<std::string>{};
    return std::optional<std::string>(it->second);
  };
}

TEST(Extlinux, AlpineMenuDefault) {
  std::map<std::string, std::string> files;
  const char* alpine = R"(DEFAULT menu.c32
PROMPT 0
MENU TITLE Alpine/Linux Boot Menu
MENU HIDDEN
TIMEOUT 10
LABEL lts
  LINUX vmlinuz-lts
  INITRD initramfs-lts
  APPEND root=UUID=abcd modules=sd-mod,usb-storage,ext4 quiet
LABEL virt
  MENU DEFAULT
  MENU LABEL Linux virt
  LINUX vmlinuz-virt
  INITRD initramfs-virt
  APPEND root=UUID=abcd modules=sd-mod,usb-storage,ext4 quiet rootfstype=ext4
MENU SEPARATOR
)";
  auto c = parse_extlinux_config(alpine, "/boot/extlinux.conf", reader(files));
  ASSERT_TRUE(c) << c.error().what;
  EXPECT_EQ(c->title, "virt");
  EXPECT_EQ(c->kernel.path, "/boot/vmlinuz-virt");
  ASSERT_EQ(c->initrds.size(), 1u);
  EXPECT_EQ(c->initrds[0].path, "/boot/initramfs-virt");
  EXPECT_EQ(c->options, "root=UUID=abcd modules=sd-mod,usb-storage,ext4 quiet rootfstype=ext4");
}

TEST(Extlinux, DefaultLabelAppendInitrdAndIncludes) {
  std::map<std::string, std::string> files;
  files["/extlinux/more.conf"] = "label two\n kernel /k2\n append initrd=/i2a,/i2b root=/dev/vda1 rw\n";
  auto c = parse_extlinux_config("default two\ninclude more.conf\nlabel one\n linux /k1\n", "/extlinux/extlinux.conf",
                                 reader(files));
  ASSERT_TRUE(c) << c.error().what;
  EXPECT_EQ(c->kernel.path, "/k2");
  ASSERT_EQ(c->initrds.size(), 2u);
  EXPECT_EQ(c->initrds[1].path, "/i2b");
  EXPECT_EQ(c->options, "root=/dev/vda1 rw");

  files["/extlinux/extlinux.conf"] = "include extlinux.conf\n";
  auto loop = parse_extlinux_config(files["/extlinux/extlinux.conf"], "/extlinux/extlinux.conf", reader(files));
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code, ELOOP);
  EXPECT_NE(loop.error().what.find("includes itself"), std::string::npos);
  auto missing = parse_extlinux_config("label x\n", "/e.conf", reader(files));
  ASSERT_FALSE(missing);
}

}  // namespace
}  // namespace microvm::image_boot
