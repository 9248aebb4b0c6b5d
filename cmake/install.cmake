# Installation: the library and headers under GNUInstallDirs, the CMake package
# (ProcPool::procpool, with its Config and ConfigVersion files) and procpool.pc.
include(CMakePackageConfigHelpers)

set(PROCPOOL_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/ProcPool")

set(procpool_installed_targets procpool)
if(TARGET procpool_mpi)
  list(APPEND procpool_installed_targets procpool_mpi) # ProcPool::mpi
endif()
install(TARGETS ${procpool_installed_targets} EXPORT ProcPoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY libpool/include/procpool DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ProcPoolTargets NAMESPACE ProcPool:: DESTINATION ${PROCPOOL_CMAKE_DIR})

# A shared library needs only its public dependencies; a static one also its private ones.
if(BUILD_SHARED_LIBS)
  set(PROCPOOL_BOOST_COMPONENTS "serialization")
else()
  set(PROCPOOL_BOOST_COMPONENTS "serialization filesystem")
  if(TARGET procpool_mpi)
    string(APPEND PROCPOOL_BOOST_COMPONENTS " mpi")
  endif()
endif()
configure_package_config_file(cmake/ProcPoolConfig.cmake.in
  "${PROJECT_BINARY_DIR}/ProcPoolConfig.cmake"
  INSTALL_DESTINATION ${PROCPOOL_CMAKE_DIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/ProcPoolConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/ProcPoolConfig.cmake"
              "${PROJECT_BINARY_DIR}/ProcPoolConfigVersion.cmake"
        DESTINATION ${PROCPOOL_CMAKE_DIR})

# pkg-config: relocatable, as `cmake --install --prefix` may pick the prefix after configuring:
# the prefix is found from where procpool.pc lies (${pcfiledir}).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(PROCPOOL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(PROCPOOL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH pc_to_prefix "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" pc_to_prefix "${pc_to_prefix}")
  set(PROCPOOL_PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
  set(PROCPOOL_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(PROCPOOL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(PROCPOOL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/procpool.pc.in "${PROJECT_BINARY_DIR}/procpool.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/procpool.pc"
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# procpool-perf and its CPython peer, when built: installed binaries find the library
# through their RUNPATH ($ORIGIN/../lib...), except a static procpool-perf, which has none.
if(TARGET procpool-perf)
  file(RELATIVE_PATH PROCPOOL_BIN_TO_LIB "/${CMAKE_INSTALL_BINDIR}" "/${CMAKE_INSTALL_LIBDIR}")
  get_target_property(procpool_perf_static procpool-perf PROCPOOL_STATIC_RUNTIME)
  if(procpool_perf_static)
    set_target_properties(procpool-perf PROPERTIES SKIP_BUILD_RPATH ON INSTALL_RPATH "")
  else()
    set_target_properties(procpool-perf PROPERTIES INSTALL_RPATH "$ORIGIN/${PROCPOOL_BIN_TO_LIB}")
  endif()
  install(TARGETS procpool-perf RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(TARGET procpool-perf-mpi)
    set_target_properties(procpool-perf-mpi PROPERTIES
      INSTALL_RPATH "$ORIGIN/${PROCPOOL_BIN_TO_LIB}")
    install(TARGETS procpool-perf-mpi RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
  install(PROGRAMS perf/peers/python_pool.py
          DESTINATION ${CMAKE_INSTALL_DATADIR}/procpool/peers)
endif()
