#pragma once
/// \file version.hpp
/// \brief Version of the torchloss headers (CMake reads it from here).

/// Major version: incremented on incompatible API changes.
#define TORCHLOSS_VERSION_MAJOR 0
/// Minor version: incremented on backwards-compatible additions.
#define TORCHLOSS_VERSION_MINOR 1
/// Patch version: incremented on fixes.
#define TORCHLOSS_VERSION_PATCH 0
