#include "cli/ctl_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
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

}  // namespace

int ctl_command(int argc, char** argv) {
  CLI::App app("Talk to a running 'microvm run --api-sock PATH'.", "microvm ctl");
  app.set_help_flag("-h,--help", "Show this help");
  std::string sock;
  bool json = false;
  app.add_option("--api-sock", sock, "The API socket of the microVM")->required();
  app.add_flag("--json", json, "Print the server's JSON instead of text");
  app.require_subcommand(1, 1);
  auto* info = app.add_subcommand("info", "Instance id, state and version");
  auto* stop = app.add_subcommand("stop", "Stop the microVM (microvm run exits with code 5)");
  // --api-sock and --json are accepted after the subcommand too.
  info->fallthrough();
  stop->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "microvm ctl: %s\nRun 'microvm ctl --help' for the options.\n", e.what());
    return kExitUsage;
  }
  const bool is_info = info->parsed();
  auto reply = is_info ? api_request(sock, "GET", "/", "")
                       : api_request(sock, "PUT", "/actions", R"({"action_type":"x-microvm-Stop"})");
  if (!reply) {
    std::fprintf(stderr, "microvm ctl: %s\n", reply.error().what.c_str());
    return kExitError;
  }
  if (reply->status >= 300) {
    if (json) std::printf("%s\n", reply->body.c_str());
    std::fprintf(stderr, "microvm ctl: %s\n", fault_text(*reply).c_str());
    return kExitError;
  }
  if (is_info) {
    if (json) {
      std::printf("%s\n", reply->body.c_str());
      return 0;
    }
    auto j = nlohmann::json::parse(reply->body, nullptr, false);
    std::printf("id:      %s\nstate:   %s\nversion: %s %s\n", string_field(j, "id").c_str(),
                string_field(j, "state").c_str(), string_field(j, "app_name").c_str(),
                string_field(j, "vmm_version").c_str());
    return 0;
  }
  if (json)
    std::printf("{}\n");
  else
    std::printf("stopped\n");
  return 0;
}

}  // namespace microvm
