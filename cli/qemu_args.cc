#include "cli/qemu_args.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>

namespace microvm {
namespace {

// QEMU options that take a value, and those that do not.
constexpr std::string_view kWithValue[] = {"-kernel",  "-initrd",  "-append", "-smp",    "-cpu",     "-nic",
                                           "-netdev",  "-drive",   "-hda",    "-hdb",    "-virtfs",  "-device",
                                           "-accel",   "-machine", "-M",      "-serial", "-display", "-object",
                                           "-chardev", "-name",    "-boot",   "-vga",    "-monitor", "-mem-path"};
constexpr std::string_view kFlags[] = {"-enable-kvm", "-nographic", "-no-reboot", "-no-user-config",
                                       "-nodefaults", "-snapshot",  "-daemonize"};

bool in(std::span<const std::string_view> list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// "a=1,b=2,flag" → ordered key/value pairs; an item without '=' is a key with an empty value.
struct Opt {
  std::string key, value;
};
std::vector<Opt> split_opts(const std::string& text) {
  std::vector<Opt> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = item.find('=');
    out.push_back(eq == std::string::npos ? Opt{item, ""} : Opt{item.substr(0, eq), item.substr(eq + 1)});
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::optional<std::string> find_opt(const std::vector<Opt>& opts, std::string_view key) {
  for (const auto& o : opts)
    if (o.key == key) return o.value;
  return std::nullopt;
}

struct NetDev {
  std::string id;
  std::string spec;  // microvm --net value
};

class Translator {
 public:
  explicit Translator(const std::function<bool(const std::string&)>& takes_value) : takes_value_(takes_value) {}

  Result<QemuTranslation> run(std::span<const std::string> in_args) {
    for (size_t i = 0; i < in_args.size(); ++i) {
      const std::string& a = in_args[i];
      bool long_form = a.size() > 2 && a[0] == '-' && a[1] == '-';
      if (long_form || a.size() <= 2 || a[0] != '-') {
        // microvm's own option (and its value, if it is separate), or a short CLI11 option.
        out_.args.push_back(a);
        bool is_option = a.size() >= 2 && a[0] == '-' && a.find('=') == std::string::npos;
        if (is_option && takes_value_(a) && i + 1 < in_args.size()) out_.args.push_back(in_args[++i]);
        continue;
      }
      std::string name = a;
      if (name.starts_with("-") && name.find('=') != std::string::npos) name = name.substr(0, name.find('='));
      if (in(kFlags, name)) {
        TRY(flag(name));
        continue;
      }
      if (!in(kWithValue, name))
        return fail(EINVAL, "'" + a +
                                "' is not a microvm option (QEMU users: README, \"Coming from QEMU\"; "
                                "'microvm run --help' lists the options)");
      if (i + 1 >= in_args.size()) return fail(EINVAL, "QEMU's " + name + " needs a value");
      TRY(with_value(name, in_args[++i]));
    }
    for (const auto& [id, mac] : pending_macs_) {
      auto it = std::find_if(netdevs_.begin(), netdevs_.end(), [&](const NetDev& n) { return n.id == id; });
      if (it == netdevs_.end())
        return fail(EINVAL, "-device virtio-net: netdev=" + id + " has no -netdev with that id");
      if (!mac.empty()) it->spec += ",mac=" + mac;
    }
    for (const auto& n : netdevs_) add("--net", n.spec);
    return std::move(out_);
  }

 private:
  void add(const std::string& flag, const std::string& value) {
    out_.args.push_back(flag);
    out_.args.push_back(value);
  }
  void note(const std::string& qemu, const std::string& ours) {
    out_.notes.push_back(ours.empty() ? "QEMU's '" + qemu + "' is not needed with microvm; ignored"
                                      : "QEMU's '" + qemu + "' read as '" + ours + "'");
  }

  Result<void> flag(const std::string& name) {
    if (name == "-enable-kvm" || name == "-nographic" || name == "-no-user-config" || name == "-nodefaults") {
      note(name, "");
      return {};
    }
    if (name == "-no-reboot") {
      note(name, "");  // a guest reboot already ends microvm (exit code 3)
      return {};
    }
    return fail(EINVAL, "QEMU's " + name + " has no microvm equivalent");
  }

  Result<void> with_value(const std::string& name, const std::string& v) {
    std::string shown = name + " " + v;
    auto direct = [&](const char* ours) {
      add(ours, v);
      note(shown, std::string(ours) + " " + v);
      return Result<void>{};
    };
    if (name == "-kernel") return direct("--kernel");
    if (name == "-initrd") return direct("--initrd");
    if (name == "-append") return direct("--cmdline");
    if (name == "-cpu") {
      if (v == "max") {
        add("--cpu", "host");
        note(shown, "--cpu host");
        return {};
      }
      return direct("--cpu");
    }
    if (name == "-smp") {
      auto opts = split_opts(v);
      std::string cpus = opts.empty() ? "" : opts[0].value.empty() ? opts[0].key : "";
      if (auto c = find_opt(opts, "cpus")) cpus = *c;
      if (cpus.empty()) return fail(EINVAL, "-smp " + v + ": use --cpus N");
      add("--cpus", cpus);
      note(shown, "--cpus " + cpus);
      return {};
    }
    if (name == "-accel" || name == "-machine" || name == "-M" || name == "-display" || name == "-name" ||
        name == "-boot" || name == "-vga") {
      note(shown, "");
      return {};
    }
    if (name == "-serial" || name == "-monitor") {
      if (v == "stdio" || v == "mon:stdio" || v == "none") {
        note(shown, "");  // the serial console is on this terminal already
        return {};
      }
      return fail(EINVAL, shown + ": microvm's serial console is always on stdin/stdout");
    }
    if (name == "-hda" || name == "-hdb")
      return fail(EINVAL, shown + ": use --disk " + v +
                              ",format=raw (or format=qcow2): microvm never guesses an image's format");
    if (name == "-drive") return drive(shown, v);
    if (name == "-nic") return nic(shown, v);
    if (name == "-netdev") return netdev(shown, v);
    if (name == "-virtfs") return virtfs(shown, v);
    if (name == "-device") return device(shown, v);
    if (name == "-object") {
      if (v.starts_with("rng-")) {
        note(shown, "");
        return {};
      }
      return fail(EINVAL, shown + ": not supported by microvm");
    }
    return fail(EINVAL, shown + ": not supported by microvm (README, \"Coming from QEMU\")");
  }

  Result<void> drive(const std::string& shown, const std::string& v) {
    auto opts = split_opts(v);
    auto file = find_opt(opts, "file");
    if (!file) return fail(EINVAL, shown + ": needs file=PATH");
    if (auto media = find_opt(opts, "media"); media && *media == "cdrom")
      return fail(EINVAL, shown + ": microvm has no CD-ROM; attach the image with --disk PATH,format=raw,readonly=on");
    auto format = find_opt(opts, "format");
    if (!format)
      return fail(EINVAL, shown + ": add format=raw or format=qcow2 (microvm never guesses), i.e. --disk " + *file +
                              ",format=raw");
    std::string spec = *file + ",format=" + *format;
    if (auto ro = find_opt(opts, "readonly"); ro && (*ro == "on" || ro->empty())) spec += ",readonly=on";
    if (auto cache = find_opt(opts, "cache"))
      spec += ",cache=" + (*cache == "none" || *cache == "directsync" ? std::string("none") : std::string("writeback"));
    add("--disk", spec);
    note(shown, "--disk " + spec);
    return {};
  }

  // user[,hostfwd=...]... / tap,ifname=T / bridge,br=B → microvm's --net value
  Result<std::string> net_spec(const std::string& shown, const std::vector<Opt>& opts) {
    if (opts.empty()) return fail(EINVAL, shown + ": which backend?");
    const std::string& kind = opts[0].key;
    std::string spec;
    if (kind == "user") {
      spec = "user";
      for (const auto& o : opts)
        if (o.key == "hostfwd")
          spec += ",hostfwd=" + o.value;
        else if (o.key == "restrict" && (o.value == "on" || o.value == "yes"))
          spec += ",restrict=on";
    } else if (kind == "tap") {
      auto ifname = find_opt(opts, "ifname");
      if (!ifname) return fail(EINVAL, shown + ": give ifname=NAME; microvm's form is --net tap=NAME");
      spec = "tap=" + *ifname;
    } else if (kind == "bridge") {
      auto br = find_opt(opts, "br");
      if (!br) return fail(EINVAL, shown + ": give br=BRIDGE; microvm's form is --net bridge=BRIDGE");
      spec = "bridge=" + *br;
    } else {
      return fail(EINVAL, shown + ": microvm networking is --net user, --net tap=NAME or --net bridge=BR");
    }
    if (auto mac = find_opt(opts, "mac")) spec += ",mac=" + *mac;
    return spec;
  }

  Result<void> nic(const std::string& shown, const std::string& v) {
    std::string spec = TRY(net_spec(shown, split_opts(v)));
    add("--net", spec);
    note(shown, "--net " + spec);
    return {};
  }

  Result<void> netdev(const std::string& shown, const std::string& v) {
    auto opts = split_opts(v);
    auto id = find_opt(opts, "id");
    if (!id) return fail(EINVAL, shown + ": needs id= (or use --net directly)");
    std::string spec = TRY(net_spec(shown, opts));
    netdevs_.push_back({*id, spec});
    note(shown, "--net " + spec);
    return {};
  }

  Result<void> virtfs(const std::string& shown, const std::string& v) {
    auto opts = split_opts(v);
    auto path = find_opt(opts, "path");
    auto tag = find_opt(opts, "mount_tag");
    if (!path || !tag)
      return fail(EINVAL, shown + ": needs path= and mount_tag=; microvm's form is --share DIR,tag=TAG");
    std::string spec = *path + ",tag=" + *tag;
    if (auto ro = find_opt(opts, "readonly"); ro && (ro->empty() || *ro == "on")) spec += ",readonly=on";
    add("--share", spec);
    note(shown, "--share " + spec + " (virtio-fs instead of 9p: the guest mounts it with -t virtiofs " + *tag + ")");
    return {};
  }

  Result<void> device(const std::string& shown, const std::string& v) {
    auto opts = split_opts(v);
    std::string model = opts.empty() ? "" : opts[0].key;
    if (model.starts_with("virtio-rng")) {
      note(shown, "");  // microvm adds virtio-rng unless --no-rng
      return {};
    }
    if (model.starts_with("virtio-net")) {
      auto id = find_opt(opts, "netdev");
      if (!id) return fail(EINVAL, shown + ": needs netdev=ID; microvm's form is --net user|tap=NAME|bridge=BR");
      pending_macs_.push_back({*id, find_opt(opts, "mac").value_or("")});
      note(shown, "");
      return {};
    }
    if (model.starts_with("virtio-blk"))
      return fail(EINVAL, shown + ": use --disk PATH,format=raw|qcow2 (every microvm disk is virtio-blk)");
    if (model == "vhost-user-fs-pci" || model == "vhost-user-fs-device")
      return fail(EINVAL, shown + ": use --share socket=PATH,tag=TAG (or --share DIR to let microvm start virtiofsd)");
    return fail(EINVAL, shown + ": no such device in microvm (README, \"Coming from QEMU\")");
  }

  const std::function<bool(const std::string&)>& takes_value_;
  QemuTranslation out_;
  std::vector<NetDev> netdevs_;
  std::vector<std::pair<std::string, std::string>> pending_macs_;  // netdev id → mac
};

}  // namespace

bool is_qemu_option(const std::string& arg) {
  if (arg.size() <= 2 || arg[0] != '-' || arg[1] == '-') return false;
  return in(kWithValue, arg) || in(kFlags, arg);
}

Result<QemuTranslation> translate_qemu_args(std::span<const std::string> args,
                                            const std::function<bool(const std::string&)>& takes_value) {
  return Translator(takes_value).run(args);
}

}  // namespace microvm
