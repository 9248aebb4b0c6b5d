# Builds and runs the consumer project against ProcPool, one way per MODE:
#   static        install BUILD_DIR (this build, a static libprocpool) to a prefix; find_package
#   shared        configure, build and install a shared libprocpool from SOURCE_DIR; find_package
#   subdirectory  the consumer adds SOURCE_DIR with add_subdirectory
#   pkgconfig     install BUILD_DIR to a prefix; a plain Makefile uses procpool.pc
# cmake -DMODE=... -DSOURCE_DIR=... -DBUILD_DIR=... -DWORK_DIR=... -DVERSION=... -P consume.cmake
foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR VERSION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "consume.cmake: ${var} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${command}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(consumer "${SOURCE_DIR}/tests/package/consumer")
set(jobs 2)

if(MODE STREQUAL "static" OR MODE STREQUAL "pkgconfig")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
elseif(MODE STREQUAL "shared")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/procpool" -DBUILD_SHARED_LIBS=ON
      -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_BUILD_PERF=OFF
      -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${prefix}")
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/procpool" -j ${jobs})
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/procpool")
  file(GLOB shared_lib "${prefix}/lib*/libprocpool.so*")
  if(NOT shared_lib)
    message(FATAL_ERROR "no libprocpool.so installed under ${prefix}")
  endif()
endif()

if(MODE STREQUAL "pkgconfig")
  file(GLOB pc_dir "${prefix}/lib*/pkgconfig")
  run(${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${pc_dir}"
      make -f "${SOURCE_DIR}/tests/package/makefile/Makefile" "SRC=${consumer}/main.cpp"
      "OUT=${WORK_DIR}/consumer")
  set(binary "${WORK_DIR}/consumer")
else()
  set(args -S "${consumer}" -B "${WORK_DIR}/consumer")
  if(MODE STREQUAL "subdirectory")
    list(APPEND args -DCONSUME_SUBDIRECTORY=ON "-DPROCPOOL_SOURCE_DIR=${SOURCE_DIR}")
  else()
    list(APPEND args "-DCMAKE_PREFIX_PATH=${prefix}")
  endif()
  run(${CMAKE_COMMAND} ${args})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer" -j ${jobs})
  set(binary "${WORK_DIR}/consumer/consumer")
endif()

run("${binary}")
message(STATUS "${last_output}")
# run() failed the test on a non-zero exit; the line must be there too, with this version.
string(REPLACE "." "\\." version_regex "${VERSION}")
if(NOT last_output MATCHES "consumer: [^\n]*procpool ${version_regex}, sum of squares 328350, 144")
  message(FATAL_ERROR "the consumer exited 0 without printing its line:\n${last_output}")
endif()
