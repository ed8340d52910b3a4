#pragma once
// The consumer tests pass the version of the tree under test, so headers picked up from
// anywhere else (a stale install, /usr/include) fail the build instead of passing quietly.
#include <torchloss/version.hpp>

#ifdef TORCHLOSS_EXPECTED_VERSION_MAJOR
static_assert(TORCHLOSS_VERSION_MAJOR == TORCHLOSS_EXPECTED_VERSION_MAJOR &&
                  TORCHLOSS_VERSION_MINOR == TORCHLOSS_EXPECTED_VERSION_MINOR &&
                  TORCHLOSS_VERSION_PATCH == TORCHLOSS_EXPECTED_VERSION_PATCH,
              "torchloss headers are not those of the tree under test");
#endif
