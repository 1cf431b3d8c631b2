# unit.core_purity: libntcore.a, the pure core, must not call Redis,
# libmicrohttpd, curl or OpenSSL — those belong to ntedge
# (docs/ARCHITECTURE.md). Run as: cmake -DNM=nm -DLIB=libntcore.a -P core_purity.cmake
if(NOT NM OR NOT LIB)
  message(FATAL_ERROR "core_purity: NM and LIB must be given")
endif()
execute_process(COMMAND ${NM} -u ${LIB} OUTPUT_VARIABLE undefined RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "core_purity: ${NM} -u ${LIB} failed (${rc})")
endif()
string(REGEX MATCHALL "U (redis|MHD_|curl_|SSL_)[A-Za-z0-9_]*" edge "${undefined}")
if(edge)
  list(REMOVE_DUPLICATES edge)
  message(FATAL_ERROR "core_purity: ${LIB} calls edge libraries: ${edge}")
endif()
# Nor a module of the edge (their prefixes), which would need ntedge to link.
string(REGEX MATCHALL "U (store|server|api|ingest|http|deliver|netio|log|metrics|config|reply|bufcache)_[A-Za-z0-9_]*" own "${undefined}")
if(own)
  list(REMOVE_DUPLICATES own)
  message(FATAL_ERROR "core_purity: ${LIB} calls edge modules: ${own}")
endif()
string(REGEX MATCHALL "U [A-Za-z_]" any "${undefined}")
list(LENGTH any n)
message(STATUS "core_purity: ${LIB} is pure (${n} undefined symbols, none from the edge)")
