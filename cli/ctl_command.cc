#include "cli/ctl_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/api_client.h"
#include "cli/ctl_usage_error.h"
#include "cli/rate_limit_arg.h"
#include "cli/size_arg.h"
#include "microvm/vm.h"

namespace microvm {
namespace {

std::string fault_text(const ApiReply& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("fault_message") && j["fault_message"].is_string())
    return j["fault_message"].get<std::string>();
  return "HTTP " + std::to_string(r.status);
}

std::string string_field(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "?";
}

// "group.counter value" lines, sorted as the server sent them (nlohmann sorts keys).
int print_metrics(const nlohmann::json& j) {
  if (!j.is_object()) {
    std::fprintf(stderr, "microvm ctl: the metrics answer is not a JSON object\n");
    return kExitError;
  }
  for (const auto& [group, counters] : j.items()) {
    if (!counters.is_object()) {
      std::printf("%s %s\n", group.c_str(), counters.dump().c_str());
      continue;
    }
    for (const auto& [name, v] : counters.items())
      std::printf("%s.%s %s\n", group.c_str(), name.c_str(), v.dump().c_str());
  }
  return 0;
}

// One line per event: "TIME EVENT [DETAIL]" (or the server's JSON with --json), flushed at
// once so a pipe sees each event when it happens.
int print_events(const std::string& sock, bool json) {
  auto done = api_stream(sock, "/events", [json](std::string_view line) {
    if (json) {
      std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    } else {
      auto j = nlohmann::json::parse(line, nullptr, false);
      std::string detail = string_field(j, "detail");
      uint64_t ms = j.is_object() && j.contains("timestamp_ms") && j["timestamp_ms"].is_number_unsigned()
                        ? j["timestamp_ms"].get<uint64_t>()
                        : 0;
      std::printf("%llu.%03llu %s%s%s\n", static_cast<unsigned long long>(ms / 1000),
                  static_cast<unsigned long long>(ms % 1000), string_field(j, "event").c_str(),
                  detail == "?" ? "" : " ", detail == "?" ? "" : detail.c_str());
    }
    std::fflush(stdout);
  });
  if (!done) {
    std::fprintf(stderr, "microvm ctl: %s\n", done.error().what.c_str());
    return kExitError;
  }
  return 0;
}

Result<ApiReply> checked(const std::string& sock, const char* method, const char* path, const std::string& body) {
  auto reply = api_request(sock, method, path, body);
  if (!reply) return std::unexpected(reply.error());
  if (reply->status >= 300) return fail(EINVAL, std::string(method) + " " + path + ": " + fault_text(*reply));
  return reply;
}

// One request of a command that ends on failure: nullopt after printing why (the server's
// fault, and with --json also its body, as the answer).
std::optional<ApiReply> request_or_report(const std::string& sock, const char* method, const std::string& path,
                                          const std::string& body, bool json) {
  auto reply = api_request(sock, method, path, body);
  if (!reply) {
    std::fprintf(stderr, "microvm ctl: %s\n", reply.error().what.c_str());
    return std::nullopt;
  }
  if (reply->status >= 300) {
    if (json) std::printf("%s\n", reply->body.c_str());
    std::fprintf(stderr, "microvm ctl: %s\n", fault_text(*reply).c_str());
    return std::nullopt;
  }
  return std::move(*reply);
}

// A command that succeeded: `{}` with --json, else what it did.
int report_done(bool json, const std::string& what) {
  if (json)
    std::printf("{}\n");
  else
    std::printf("%s\n", what.c_str());
  return 0;
}

// PATCH /vm Paused (if running), PUT /snapshot/create, PATCH /vm Resumed (if it paused it).
// The server writes the files; it runs on this host, so DIR is made absolute and created here.
int ctl_snapshot(const std::string& sock, std::string dir, bool keep_paused, bool json) {
  char cwd[4096];
  if (!dir.empty() && dir[0] != '/' && ::getcwd(cwd, sizeof cwd)) dir = std::string(cwd) + "/" + dir;
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // A jailed VMM writes as its own unprivileged user into its --snapshot-dir, which that
    // user owns: a directory root makes there gets the parent's owner, or the VMM could not
    // write into it.
    struct stat parent {};
    const std::string up = dir.substr(0, dir.find_last_of('/') == 0 ? 1 : dir.find_last_of('/'));
    if (::geteuid() == 0 && ::stat(up.c_str(), &parent) == 0 && parent.st_uid != 0 &&
        ::chown(dir.c_str(), parent.st_uid, parent.st_gid) < 0)
      std::fprintf(stderr, "microvm ctl: chown %s: %s\n", dir.c_str(), std::strerror(errno));
  } else if (errno != EEXIST) {
    std::fprintf(stderr, "microvm ctl: create %s: %s\n", dir.c_str(), std::strerror(errno));
    return kExitError;
  }
  auto info = checked(sock, "GET", "/", "");
  if (!info) {
    std::fprintf(stderr, "microvm ctl: %s\n", info.error().what.c_str());
    return kExitError;
  }
  const bool was_running = string_field(nlohmann::json::parse(info->body, nullptr, false), "state") == "Running";
  if (was_running) {
    if (auto p = checked(sock, "PATCH", "/vm", R"({"state":"Paused"})"); !p) {
      std::fprintf(stderr, "microvm ctl: %s\n", p.error().what.c_str());
      return kExitError;
    }
  }
  nlohmann::json body = {
      {"snapshot_type", "Full"}, {"snapshot_path", dir + "/state"}, {"mem_file_path", dir + "/memory"}};
  auto created = checked(sock, "PUT", "/snapshot/create", body.dump());
  if (was_running && !keep_paused) {
    if (auto r = checked(sock, "PATCH", "/vm", R"({"state":"Resumed"})"); !r)
      std::fprintf(stderr, "microvm ctl: %s\n", r.error().what.c_str());
  }
  if (!created) {
    std::fprintf(stderr, "microvm ctl: %s\n", created.error().what.c_str());
    return kExitError;
  }
  return report_done(json, "snapshot written to " + dir);
}

// PATCH /drives/ID with the path made absolute (the microVM may run in another directory).
int ctl_drive_swap(const std::string& sock, const std::string& id, const std::string& path, const std::string& format,
                   bool json) {
  std::error_code ec;
  std::string absolute = std::filesystem::absolute(path, ec).string();
  if (ec) absolute = path;
  nlohmann::json body = {{"drive_id", id}, {"path_on_host", absolute}};
  if (!format.empty()) body["x-microvm-format"] = format;
  if (!request_or_report(sock, "PATCH", "/drives/" + id, body.dump(), json)) return kExitError;
  return report_done(json, "drive " + id + " now uses " + absolute);
}

// The buckets `microvm ctl rate-limit` was given: for a drive `bandwidth` and `ops`, for an
// interface the same under rx_ and tx_. Empty: keep that bucket.
struct RateLimitArgs {
  std::string kind, id;
  std::string bandwidth, ops, rx_bandwidth, rx_ops, tx_bandwidth, tx_ops;
};

// PATCH /drives/ID {"rate_limiter": ...} or PATCH /network-interfaces/ID {"rx_rate_limiter":
// ..., "tx_rate_limiter": ...}. Bad arguments exit 2 before anything is sent.
int ctl_rate_limit(const std::string& sock, const RateLimitArgs& a, bool json) {
  const bool drive = a.kind == "drive";
  auto usage = [](const std::string& why) {
    std::fprintf(stderr, "microvm ctl rate-limit: %s\nRun 'microvm ctl rate-limit --help' for the options.\n",
                 why.c_str());
    return kExitUsage;
  };
  struct Bucket {
    const char* option;
    const char* limiter;  // the body's field
    const char* key;      // "bandwidth" or "ops"
    const std::string* spec;
  };
  const Bucket buckets[] = {
      {"--bandwidth", "rate_limiter", "bandwidth", &a.bandwidth},
      {"--ops", "rate_limiter", "ops", &a.ops},
      {"--rx-bandwidth", "rx_rate_limiter", "bandwidth", &a.rx_bandwidth},
      {"--rx-ops", "rx_rate_limiter", "ops", &a.rx_ops},
      {"--tx-bandwidth", "tx_rate_limiter", "bandwidth", &a.tx_bandwidth},
      {"--tx-ops", "tx_rate_limiter", "ops", &a.tx_ops},
  };
  nlohmann::json body = {{drive ? "drive_id" : "iface_id", a.id}};
  std::string said;
  for (const auto& b : buckets) {
    const bool for_drive = std::string_view(b.limiter) == "rate_limiter";
    if (b.spec->empty()) continue;
    if (for_drive != drive)
      return usage(std::string(b.option) + " is for " + (for_drive ? "drives" : "network interfaces (net)"));
    auto bucket = parse_token_bucket_arg(*b.spec);
    if (!bucket) return usage(std::string(b.option) + " " + bucket.error().what);
    body[b.limiter][b.key] = *bucket;
    std::string where = for_drive ? std::string(b.key) : std::string(b.limiter).substr(0, 2) + " " + b.key;
    said += (said.empty() ? "" : ", ") + where + " " + describe_token_bucket(*bucket);
  }
  if (said.empty())
    return usage(drive ? "give --bandwidth and/or --ops"
                       : "give --rx-bandwidth, --rx-ops, --tx-bandwidth and/or --tx-ops");
  std::string path = (drive ? "/drives/" : "/network-interfaces/") + a.id;
  auto reply = api_request(sock, "PATCH", path, body.dump());
  if (!reply) {
    std::fprintf(stderr, "microvm ctl: %s\n", reply.error().what.c_str());
    return kExitError;
  }
  if (reply->status >= 300) {
    if (json) std::printf("%s\n", reply->body.c_str());
    std::fprintf(stderr, "microvm ctl: %s\n", fault_text(*reply).c_str());
    return kExitError;
  }
  // The server answers 204: --json shows what was applied, in the API's own shape.
  if (json)
    std::printf("%s\n", body.dump().c_str());
  else
    std::printf("%s %s: %s; other buckets unchanged\n", drive ? "drive" : "network interface", a.id.c_str(),
                said.c_str());
  return 0;
}

// "--api-sock", "-h", ... for each named option of `app` (positionals have no names).
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
  }
  return out;
}

CtlSyntax syntax_of(const CLI::App& app) {
  CtlSyntax syntax;
  syntax.global_options = option_names(app);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    syntax.commands.push_back(sub->get_name());
    syntax.command_options[sub->get_name()] = option_names(*sub);
  }
  return syntax;
}

}  // namespace

int ctl_command(int argc, char** argv) {
  CLI::App app("Talk to a running 'microvm run --api-sock PATH'.", "microvm ctl");
  app.set_help_flag("-h,--help", "Show this help");
  std::string sock;
  bool json = false;
  app.add_option("--api-sock", sock, "The API socket of the microVM")->required();
  app.add_flag("--json", json, "Print the server's JSON instead of text");
  app.require_subcommand(1, 1);
  // Each command is one API request; `info` prints the instance, the others a word on success.
  struct Command {
    const char* name;
    const char* help;
    const char* method;
    const char* path;
    const char* body;
    const char* done;
    CLI::App* app = nullptr;
  };
  Command commands[] = {
      {"info", "Instance id, state and version", "GET", "/", "", nullptr},
      {"pause", "Pause the microVM (vCPUs and device work stop; guest time is frozen)", "PATCH", "/vm",
       R"({"state":"Paused"})", "paused"},
      {"resume", "Resume a paused microVM", "PATCH", "/vm", R"({"state":"Resumed"})", "resumed"},
      {"shutdown", "Press the guest's ACPI power button (a guest with a handler powers off)", "PUT", "/actions",
       R"({"action_type":"SendCtrlAltDel"})", "power button pressed"},
      {"stop", "Stop the microVM (microvm run exits with code 5)", "PUT", "/actions",
       R"({"action_type":"x-microvm-Stop"})", "stopped"},
      {"metrics", "Every counter (devices, vCPU exits, event loop, API), one 'group.name value' per line", "GET",
       "/metrics", "", nullptr},
      {"events",
       "Print state changes (started, paused, resumed, shutdown-requested, stopped, ...) as they "
       "happen, until the microVM stops",
       "GET", "/events", "", nullptr},
  };
  for (auto& c : commands) {
    c.app = app.add_subcommand(c.name, c.help);
    c.app->fallthrough();  // --api-sock and --json are accepted after the subcommand too
  }
  std::string snapshot_dir;
  bool keep_paused = false;
  CLI::App* snapshot = app.add_subcommand(
      "snapshot", "Write a snapshot to DIR (DIR/state, DIR/memory): pauses a running microVM, saves, resumes it");
  snapshot->add_option("DIR", snapshot_dir, "Directory for the snapshot (created if missing)")->required();
  snapshot->add_flag("--keep-paused", keep_paused, "Leave the microVM paused afterwards");
  snapshot->fallthrough();
  std::string balloon_size;
  CLI::App* balloon =
      app.add_subcommand("balloon", "Resize the balloon (PATCH /balloon): SIZE like 128M; 0 deflates it");
  balloon->add_option("SIZE", balloon_size, "Memory the guest gives back (a bare number is MiB)")->required();
  balloon->fallthrough();
  std::string swap_drive, swap_path, swap_format;
  CLI::App* drive_swap =
      app.add_subcommand("drive-swap",
                         "Give a running microVM's drive another image (PATCH /drives/ID): the guest sees the new "
                         "contents and size; on any error the old image stays");
  drive_swap->add_option("DRIVE_ID", swap_drive, "The drive: its API id, or drive0, drive1... for --disk order")
      ->required();
  drive_swap
      ->add_option("PATH", swap_path,
                   "The new image (opened by the microVM with the drive's format and "
                   "read-only setting)")
      ->required();
  drive_swap->add_option("--format", swap_format, "raw or qcow2 instead of the drive's current format")
      ->check(CLI::IsMember({"raw", "qcow2"}));
  drive_swap->fallthrough();
  RateLimitArgs limits;
  CLI::App* rate_limit = app.add_subcommand(
      "rate-limit",
      "Change a running drive's or network interface's rate limits (PATCH /drives/ID, PATCH "
      "/network-interfaces/ID). SPEC is SIZE/REFILL[+BURST]: SIZE bytes or operations (K, M, G) per REFILL "
      "(ms, or with an ms or s suffix), plus a one-time BURST spent first and never refilled; or off. "
      "Buckets not named keep their limits");
  rate_limit->add_option("KIND", limits.kind, "drive or net")->required()->check(CLI::IsMember({"drive", "net"}));
  rate_limit
      ->add_option("ID", limits.id, "The drive or interface: its API id, or drive0/net0... for --disk/--net order")
      ->required();
  rate_limit->add_option("--bandwidth", limits.bandwidth, "drive: bytes, SPEC (e.g. 10M/1s, 1M/100ms+64M, off)");
  rate_limit->add_option("--ops", limits.ops, "drive: requests, SPEC (e.g. 1000/1s)");
  rate_limit->add_option("--rx-bandwidth", limits.rx_bandwidth, "net: received bytes, SPEC");
  rate_limit->add_option("--rx-ops", limits.rx_ops, "net: received frames, SPEC");
  rate_limit->add_option("--tx-bandwidth", limits.tx_bandwidth, "net: sent bytes, SPEC");
  rate_limit->add_option("--tx-ops", limits.tx_ops, "net: sent frames, SPEC");
  rate_limit->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
    std::fprintf(stderr, "microvm ctl: %s\n", ctl_usage_error(args, syntax_of(app), e.what()).c_str());
    return kExitUsage;
  }
  if (snapshot->parsed()) return ctl_snapshot(sock, snapshot_dir, keep_paused, json);
  if (drive_swap->parsed()) return ctl_drive_swap(sock, swap_drive, swap_path, swap_format, json);
  if (rate_limit->parsed()) return ctl_rate_limit(sock, limits, json);
  if (balloon->parsed()) {
    auto bytes = parse_size(balloon_size, 1ull << 20);
    if (!bytes) {
      std::fprintf(stderr, "microvm ctl balloon: %s\n", bytes.error().what.c_str());
      return kExitUsage;
    }
    uint64_t mib = *bytes >> 20;
    if (!request_or_report(sock, "PATCH", "/balloon", "{\"amount_mib\":" + std::to_string(mib) + "}", json))
      return kExitError;
    return report_done(json, "balloon target " + std::to_string(mib) + " MiB");
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands) {
    if (c.app->parsed()) cmd = &c;
  }
  if (!cmd) return kExitUsage;  // require_subcommand(1, 1) makes this unreachable
  if (std::string_view(cmd->name) == "events") return print_events(sock, json);
  const bool is_info = cmd->done == nullptr;
  auto reply = request_or_report(sock, cmd->method, cmd->path, cmd->body, json);
  if (!reply) return kExitError;
  if (is_info) {
    if (json) {
      std::printf("%s\n", reply->body.c_str());
      return 0;
    }
    auto j = nlohmann::json::parse(reply->body, nullptr, false);
    if (std::string_view(cmd->name) == "metrics") return print_metrics(j);
    std::printf("id:      %s\nstate:   %s\nversion: %s %s\n", string_field(j, "id").c_str(),
                string_field(j, "state").c_str(), string_field(j, "app_name").c_str(),
                string_field(j, "vmm_version").c_str());
    return 0;
  }
  return report_done(json, cmd->done);
}

}  // namespace microvm
