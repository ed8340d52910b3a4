# Shared by the consumer projects: pins the headers to the version of the tree under test.
# TORCHLOSS_EXPECTED_VERSION (MAJOR.MINOR.PATCH) is set by the consumer tests; a user who
# configures a consumer by hand can leave it unset.
function(torchloss_consumer_expect_version target)
  if(NOT DEFINED TORCHLOSS_EXPECTED_VERSION)
    return()
  endif()
  if(NOT TORCHLOSS_EXPECTED_VERSION MATCHES "^([0-9]+)\\.([0-9]+)\\.([0-9]+)$")
    message(FATAL_ERROR "TORCHLOSS_EXPECTED_VERSION='${TORCHLOSS_EXPECTED_VERSION}' is not MAJOR.MINOR.PATCH")
  endif()
  target_compile_definitions(${target} PRIVATE
    TORCHLOSS_EXPECTED_VERSION_MAJOR=${CMAKE_MATCH_1}
    TORCHLOSS_EXPECTED_VERSION_MINOR=${CMAKE_MATCH_2}
    TORCHLOSS_EXPECTED_VERSION_PATCH=${CMAKE_MATCH_3})
endfunction()

# As a subproject torchloss must not drag in its tests, benchmarks, examples or docs (they
# need Catch2, Google Benchmark and Doxygen, which a consumer need not have).
function(torchloss_consumer_expect_lean_subproject)
  foreach(option TORCHLOSS_BUILD_TESTS TORCHLOSS_BUILD_BENCH TORCHLOSS_BUILD_EXAMPLES TORCHLOSS_BUILD_DOCS)
    if(${option})
      message(FATAL_ERROR "${option} is ON in a subproject build; it should default to OFF")
    endif()
  endforeach()
  if(TARGET docs)
    message(FATAL_ERROR "torchloss added its 'docs' target to a consumer's build")
  endif()
endfunction()
