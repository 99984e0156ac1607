#pragma once
// Result<T> and Error are part of the public API (include/microvm/result.h). Inside microvm
// the short spelling TRY is used; the public header only exports MICROVM_TRY.
#include "microvm/result.h"

#define TRY(expr) MICROVM_TRY(expr)
