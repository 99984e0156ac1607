// Pre-boot configuration (PUT /machine-config, /boot-source, /drives/ID,
// /network-interfaces/ID, /logger, /metrics). Each validates the whole body before it
// changes anything, so a refused request leaves the configuration as it was.
#include <sys/stat.h>

#include <cctype>
#include <cstring>

#include "api/handlers.h"
#include "api/json_body.h"
#include "api/rate_limiter_json.h"

namespace microvm::api {
namespace {

constexpr unsigned kMaxVcpus = 254;          // as `microvm run --cpus`
constexpr uint64_t kMaxMemMib = 1ull << 24;  // 16 TiB: keeps mem_size_mib << 20 far from overflow

HttpResponse bad(const Error& e) { return fault(400, e.what); }

// Configuration is closed once the guest runs; the message names the resource.
std::optional<HttpResponse> refuse_after_start(const Controller& c, const char* what) {
  if (c.state() == InstanceState::kNotStarted) return std::nullopt;
  return fault(400, std::string("cannot change ") + what + " after the microVM has started");
}

// Firecracker's id rule: letters, digits and '_' (we also take '-'), 1..64 bytes.
bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') return false;
  return true;
}

// The file must exist now (Firecracker opens drives and kernels at PUT); Vm::create
// checks again at start, because it may be gone by then.
Result<void> check_file(const std::string& what, const std::string& path) {
  if (path.empty()) return fail(EINVAL, what + ": the path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail_errno(what + " '" + path + "'");
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return fail(EINVAL, what + " '" + path + "' is not a regular file or block device");
  return {};
}

}  // namespace

HttpResponse put_machine_config(Controller& c, const std::string& body, bool patch) {
  if (auto r = refuse_after_start(c, "the machine configuration")) return *r;
  auto j = parse_object(body, {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "cpu_template", "huge_pages"});
  if (!j) return bad(j.error());
  auto vcpus = get_uint(*j, "vcpu_count");
  auto mem = get_uint(*j, "mem_size_mib");
  auto smt = get_bool(*j, "smt");
  auto dirty = get_bool(*j, "track_dirty_pages");
  auto tmpl = get_string(*j, "cpu_template");
  auto huge = get_string(*j, "huge_pages");
  for (const Error* e :
       {vcpus ? nullptr : &vcpus.error(), mem ? nullptr : &mem.error(), smt ? nullptr : &smt.error(),
        dirty ? nullptr : &dirty.error(), tmpl ? nullptr : &tmpl.error(), huge ? nullptr : &huge.error()})
    if (e) return bad(*e);
  if (!patch && (!*vcpus || !*mem)) return fault(400, "PUT /machine-config needs vcpu_count and mem_size_mib");
  if (*vcpus && (**vcpus < 1 || **vcpus > kMaxVcpus))
    return fault(400, "vcpu_count must be between 1 and " + std::to_string(kMaxVcpus));
  if (*mem && (**mem < 1 || **mem > kMaxMemMib))
    return fault(400, "mem_size_mib must be between 1 and " + std::to_string(kMaxMemMib));
  if (*tmpl && **tmpl != "None") return fault(400, "cpu_template '" + **tmpl + "' is not supported (only \"None\")");
  if (*huge && **huge != "None" && **huge != "2M") return fault(400, "huge_pages must be \"None\" or \"2M\"");
  if (*vcpus) c.config().cpus = static_cast<unsigned>(**vcpus);
  if (*mem) c.config().memory_bytes = **mem << 20;
  if (*huge) c.config().hugepages = **huge == "2M";
  if (*smt)
    c.smt = **smt;
  else if (!patch)
    c.smt = false;
  if (*dirty)
    c.track_dirty_pages = **dirty;
  else if (!patch)
    c.track_dirty_pages = false;
  return no_content();
}

HttpResponse put_boot_source(Controller& c, const std::string& body) {
  if (auto r = refuse_after_start(c, "the boot source")) return *r;
  auto j = parse_object(body, {"kernel_image_path", "boot_args", "initrd_path"});
  if (!j) return bad(j.error());
  auto kernel = get_string(*j, "kernel_image_path");
  auto args = get_string(*j, "boot_args");
  auto initrd = get_string(*j, "initrd_path");
  if (!kernel) return bad(kernel.error());
  if (!args) return bad(args.error());
  if (!initrd) return bad(initrd.error());
  if (!*kernel) return fault(400, "kernel_image_path is required");
  if (auto ok = check_file("kernel_image_path", **kernel); !ok) return bad(ok.error());
  if (*initrd)
    if (auto ok = check_file("initrd_path", **initrd); !ok) return bad(ok.error());
  c.config().kernel_path = **kernel;
  if (*args) c.config().cmdline = **args;
  c.config().initrd_path = initrd->value_or("");
  return no_content();
}

HttpResponse put_drive(Controller& c, const std::string& id, const std::string& body) {
  if (auto r = refuse_after_start(c, "drives")) return *r;
  auto j = parse_object(body, {"drive_id", "path_on_host", "is_root_device", "is_read_only", "partuuid", "cache_type",
                               "io_engine", "rate_limiter", "socket", "x-microvm-format"});
  if (!j) return bad(j.error());
  if (!valid_id(id)) return fault(400, "drive id must be 1-64 letters, digits, '_' or '-'");
  auto body_id = get_string(*j, "drive_id");
  auto path = get_string(*j, "path_on_host");
  auto root = get_bool(*j, "is_root_device");
  auto ro = get_bool(*j, "is_read_only");
  auto cache = get_string(*j, "cache_type");
  auto engine = get_string(*j, "io_engine");
  auto format = get_string(*j, "x-microvm-format");
  for (const Error* e : {body_id ? nullptr : &body_id.error(), path ? nullptr : &path.error(),
                         root ? nullptr : &root.error(), ro ? nullptr : &ro.error(), cache ? nullptr : &cache.error(),
                         engine ? nullptr : &engine.error(), format ? nullptr : &format.error()})
    if (e) return bad(*e);
  if (!*body_id || **body_id != id)
    return fault(400, "drive_id in the body must match the id in the path ('" + id + "')");
  if (!*path) return fault(400, "path_on_host is required");
  if (!*root) return fault(400, "is_root_device is required");
  for (const char* unsupported : {"partuuid", "socket"})
    if (j->contains(unsupported) && !(*j)[unsupported].is_null())
      return fault(400, std::string("drive field '") + unsupported + "' is not supported yet");
  Json limiter = j->contains("rate_limiter") ? (*j)["rate_limiter"] : Json();
  DiskConfig d;
  if (!limiter.is_null()) {
    auto parsed = parse_rate_limiter(limiter, "rate_limiter");
    if (!parsed) return bad(parsed.error());
    d.rate_limit = rate_limit_of(*parsed);
    limiter = merge_rate_limiter(Json(), limiter);
  }
  d.path = **path;
  d.read_only = ro->value_or(false);
  // Never probed: raw unless the client says otherwise, so guest-written bytes can never
  // make a raw disk be read as qcow2.
  auto disk_format = disk_format_from_string(format->value_or("raw"));
  if (!disk_format) return fault(400, "x-microvm-format must be \"raw\" or \"qcow2\"");
  d.format = *disk_format;
  // Firecracker's "Unsafe" ignores guest flushes; we always honour them (never lose data).
  if (*cache && **cache != "Unsafe" && **cache != "Writeback")
    return fault(400, "cache_type must be \"Unsafe\" or \"Writeback\"");
  if (*engine && **engine != "Sync" && **engine != "Async")
    return fault(400, "io_engine must be \"Sync\" or \"Async\"");
  if (*engine) d.engine = **engine == "Sync" ? EngineKind::kSync : EngineKind::kIoUring;
  if (auto ok = check_file("drive '" + id + "' path_on_host", d.path); !ok) return bad(ok.error());
  auto& drives = c.drives();
  for (const auto& other : drives)
    if (**root && other.is_root && other.id != id)
      return fault(400, "drive '" + other.id + "' is already the root device");
  for (auto& other : drives)
    if (other.id == id) {
      other = DriveEntry{id, **root, d, limiter};
      return no_content();
    }
  drives.push_back(DriveEntry{id, **root, d, limiter});
  return no_content();
}

HttpResponse put_network_interface(Controller& c, const std::string& id, const std::string& body) {
  if (auto r = refuse_after_start(c, "network interfaces")) return *r;
  auto j = parse_object(body, {"iface_id", "host_dev_name", "guest_mac", "rx_rate_limiter", "tx_rate_limiter"});
  if (!j) return bad(j.error());
  if (!valid_id(id)) return fault(400, "interface id must be 1-64 letters, digits, '_' or '-'");
  auto body_id = get_string(*j, "iface_id");
  auto dev = get_string(*j, "host_dev_name");
  auto mac = get_string(*j, "guest_mac");
  for (const Error* e :
       {body_id ? nullptr : &body_id.error(), dev ? nullptr : &dev.error(), mac ? nullptr : &mac.error()})
    if (e) return bad(*e);
  if (!*body_id || **body_id != id)
    return fault(400, "iface_id in the body must match the id in the path ('" + id + "')");
  if (!*dev || (*dev)->empty() || (*dev)->size() > 15) return fault(400, "host_dev_name must name a tap (1-15 bytes)");
  NetConfig n;
  n.tap = **dev;
  n.mac = mac->value_or("");  // checked by Vm::create, which knows the MAC syntax
  n.rx_rate_limit = IoLimit{};
  Json limiters[2];
  IoLimit* limits[2] = {&*n.rx_rate_limit, &n.rate_limit};
  for (int i = 0; i < 2; ++i) {
    const char* key = i == 0 ? "rx_rate_limiter" : "tx_rate_limiter";
    if (!j->contains(key) || (*j)[key].is_null()) continue;
    auto parsed = parse_rate_limiter((*j)[key], key);
    if (!parsed) return bad(parsed.error());
    *limits[i] = rate_limit_of(*parsed);
    limiters[i] = merge_rate_limiter(Json(), (*j)[key]);
  }
  // vhost-net's kernel worker moves the frames, so nothing of ours could hold them back.
  if (n.rate_limit.limited() || n.rx_rate_limit->limited()) n.vhost = VhostMode::kOff;
  NetEntry entry{id, n, limiters[0], limiters[1]};
  for (auto& other : c.nets())
    if (other.id == id) {
      other = entry;
      return no_content();
    }
  c.nets().push_back(entry);
  return no_content();
}

// Firecracker's entropy device is virtio-rng, which microvm has unless --no-rng: PUT /entropy
// turns it on with the body's rate limiter (none: unlimited).
HttpResponse put_entropy(Controller& c, const std::string& body) {
  if (auto r = refuse_after_start(c, "the entropy device")) return *r;
  auto j = parse_object(body, {"rate_limiter"});
  if (!j) return bad(j.error());
  IoLimit limit;
  if (j->contains("rate_limiter") && !(*j)["rate_limiter"].is_null()) {
    auto parsed = parse_rate_limiter((*j)["rate_limiter"], "rate_limiter");
    if (!parsed) return bad(parsed.error());
    limit = rate_limit_of(*parsed);
  }
  c.config().rng = true;
  c.config().rng_rate_limit = limit;
  return no_content();
}

// Logging and metrics go to stderr and the log sink the owner configured; a file
// destination is not implemented, so it is refused rather than silently ignored.
HttpResponse put_logger(Controller& c, const std::string& body) {
  if (auto r = refuse_after_start(c, "the logger")) return *r;
  auto j = parse_object(body, {"log_path", "level", "show_level", "show_log_origin", "module"});
  if (!j) return bad(j.error());
  if (j->contains("log_path")) return fault(400, "logger log_path is not supported yet (microvm logs to stderr)");
  auto level = get_string(*j, "level");
  if (!level) return bad(level.error());
  if (*level) {
    const std::string& l = **level;
    if (l == "Error")
      c.config().log_level = LogLevel::kError;
    else if (l == "Warning")
      c.config().log_level = LogLevel::kWarn;
    else if (l == "Info")
      c.config().log_level = LogLevel::kInfo;
    else if (l == "Debug" || l == "Trace")
      c.config().log_level = LogLevel::kDebug;
    else if (l != "Off")
      return fault(400, "level must be Error, Warning, Info, Debug, Trace or Off");
  }
  return no_content();
}

}  // namespace microvm::api
