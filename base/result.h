#pragma once
// Result<T>, Error and TRY are part of the public API; see include/microvm/result.h.
#include "microvm/result.h"
