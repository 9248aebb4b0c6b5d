// ProcPool: Python's multiprocessing.Pool for C++. Include this one header.
#pragma once

#include <procpool/async_result.hpp>
#include <procpool/context.hpp>
#include <procpool/errors.hpp>
#include <procpool/imap_result.hpp>
#include <procpool/init.hpp>
#include <procpool/initializer.hpp>
#include <procpool/pool.hpp>
#include <procpool/pool_options.hpp>
#include <procpool/version.hpp>
