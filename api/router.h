#pragma once
// Maps method + path to a handler (handlers.h): 404 for unknown paths, 405 for a known
// path with a method it does not take. Catches anything a handler might throw, so the
// server thread never unwinds.
#include "api/controller.h"
#include "api/http_message.h"

namespace microvm::api {

HttpResponse route(Controller& controller, const HttpRequest& request);

}  // namespace microvm::api
