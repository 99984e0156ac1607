#include "boot/image_boot/grub_config.h"

#include <gtest/gtest.h>

#include <map>

namespace microvm::image_boot {
namespace {

struct Files {
  std::map<std::string, std::string> files;
  ReadConfigFile reader() {
    return [this](const std::string& p) -> Result<std::optional<std::string>> {
      auto it = files.find(p);
      if (it == files.end()) return std::optional<std::string>{};
      return std::optional<std::string>(it->second);
    };
  }
};

// The shape update-grub writes on Debian 12 (abridged, same constructs).
const char* kDebian = R"CFG(
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
  fi
}
if [ x$feature_timeout_style = xy ] ; then
  set timeout_style=menu
  set timeout=5
else
  set timeout=5
fi
### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-1111-2222' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	set root='hd0,gpt1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt1 --hint-efi=hd0,gpt1 --hint-baremetal=ahci0,gpt1  1111-2222
	else
	  search --no-floppy --fs-uuid --set=root 1111-2222
	fi
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=1111-2222 ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-13-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-1111-2222' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-13-amd64-advanced-1111-2222' {
		search --no-floppy --fs-uuid --set=root 1111-2222
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=1111-2222 ro  quiet
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.1.0-13-amd64-recovery-1111-2222' {
		search --no-floppy --fs-uuid --set=root 1111-2222
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=1111-2222 ro single
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
}
if [ -f  ${config_directory}/custom.cfg ]; then
  source ${config_directory}/custom.cfg
elif [ -z "${config_directory}" -a -f  $prefix/custom.cfg ]; then
  source $prefix/custom.cfg
fi
)CFG";

TEST(GrubConfig, DebianDefaultEntry) {
  Files f;
  auto e = parse_grub_config(kDebian, "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->title, "Debian GNU/Linux");
  EXPECT_EQ(e->kernel.path, "/boot/vmlinuz-6.1.0-13-amd64");
  EXPECT_EQ(e->kernel.device, "uuid=1111-2222");
  ASSERT_EQ(e->initrds.size(), 1u);
  EXPECT_EQ(e->initrds[0].path, "/boot/initrd.img-6.1.0-13-amd64");
  EXPECT_EQ(e->options, "root=UUID=1111-2222 ro quiet");
}

// The default entry's body sources a file that defines more menu entries: running it grows the
// list the chosen entry lives in (a reallocation; found by fuzz_boot_config under ASan as a use
// after free of the entry's title).
TEST(GrubConfig, DefaultEntryBodyThatDefinesEntriesKeepsItsTitle) {
  Files f;
  std::string more;
  for (int i = 0; i < 40; ++i) more += "menuentry 'extra " + std::to_string(i) + "' { linux /x }\n";
  f.files["/boot/grub/more.cfg"] = more;
  auto e = parse_grub_config("menuentry 'First entry' {\n  source /boot/grub/more.cfg\n  linux /vmlinuz ro\n}\n",
                             "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->title, "First entry");
  EXPECT_EQ(e->kernel.path, "/vmlinuz");
}

TEST(GrubConfig, SavedEntryFromGrubenvSelectsSubmenuEntry) {
  Files f;
  f.files["/boot/grub/grubenv"] =
      "# GRUB Environment Block\nnext_entry=gnulinux-advanced-1111-2222>gnulinux-6.1.0-13-amd64-recovery-1111-2222\n";
  auto e = parse_grub_config(kDebian, "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->options, "root=UUID=1111-2222 ro single");
}

TEST(GrubConfig, DefaultByNumberPathAndTitle) {
  Files f;
  std::string base = std::string(kDebian);
  auto with_default = [&](const std::string& d) { return base + "\nset default=\"" + d + "\"\n"; };
  auto e = parse_grub_config(with_default("1>1"), "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->title, "Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)");
  e = parse_grub_config(
      with_default("Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-13-amd64"),
      "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->options, "root=UUID=1111-2222 ro quiet");
  EXPECT_EQ(e->title, "Debian GNU/Linux, with Linux 6.1.0-13-amd64");
  // A default that names nothing: GRUB boots entry 0.
  e = parse_grub_config(with_default("7"), "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->title, "Debian GNU/Linux");
}

TEST(GrubConfig, DevicesInPathsAndRootVariable) {
  Files f;
  auto e = parse_grub_config(
      "menuentry x {\n set root=(hd0,msdos3)\n linux ($root)/vmlinuz a=\"b c\"\n"
      " initrd (hd0,gpt1)/i1 /i2\n}\n",
      "/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->kernel.device, "part3");
  EXPECT_EQ(e->kernel.path, "/vmlinuz");
  EXPECT_EQ(e->options, "a=b c");
  ASSERT_EQ(e->initrds.size(), 2u);
  EXPECT_EQ(e->initrds[0].device, "part1");
  EXPECT_EQ(e->initrds[1].device, "part3");
  e = parse_grub_config("menuentry x { linux (cd0)/vmlinuz }\n", "/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->kernel.device, "grub:cd0");
}

TEST(GrubConfig, SourceIncludesAndLoops) {
  Files f;
  f.files["/boot/grub/entries.cfg"] = "menuentry included { linux /vmlinuz-inc }\n";
  auto e = parse_grub_config("source /boot/grub/entries.cfg\n", "/boot/grub/grub.cfg", f.reader());
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(e->kernel.path, "/vmlinuz-inc");

  f.files["/boot/grub/grub.cfg"] = "source $prefix/grub.cfg\nmenuentry a { linux /v }\n";
  e = parse_grub_config(f.files["/boot/grub/grub.cfg"], "/boot/grub/grub.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ELOOP);
  EXPECT_NE(e.error().what.find("includes itself"), std::string::npos) << e.error().what;

  f.files["/a.cfg"] = "source /b.cfg\n";
  f.files["/b.cfg"] = "configfile /a.cfg\n";
  e = parse_grub_config(f.files["/a.cfg"], "/a.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("/a.cfg -> /b.cfg -> /a.cfg"), std::string::npos) << e.error().what;
}

TEST(GrubConfig, HostileScriptsFailClearly) {
  Files f;
  auto e = parse_grub_config("menuentry 'x { linux /v }\n", "/g.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("unterminated quote"), std::string::npos);
  e = parse_grub_config("function f { f }\nf\nmenuentry a { linux /v }\n", "/g.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ELOOP);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "if true; then\n";
  e = parse_grub_config(deep, "/g.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("nested deeper"), std::string::npos) << e.error().what;
  e = parse_grub_config("set default=0\n", "/g.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("no menuentry"), std::string::npos);
  e = parse_grub_config("menuentry a { echo no kernel }\n", "/g.cfg", f.reader());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().what.find("has no linux command"), std::string::npos);
}

}  // namespace
}  // namespace microvm::image_boot
