// See executor.hpp.
#include "executor.hpp"

#include <procpool/detail/exception_codec.hpp>
#include <procpool/detail/task.hpp>

#include <chrono>
#include <cstring>

namespace procpool::detail {

namespace {

void fail(result_header& result, std::vector<char>& output, const char* message) {
    result.failed = 1;
    result.ok_count = 0;
    result.error_offset = output.size() - sizeof(result_header);
    append_pool_error(output, message);
}

/// The result header that answers `task`, before the outcome is known.
result_header answer_to(const task_header& task) {
    result_header result;
    result.task_id = task.task_id;
    result.kind =
        task.kind == frame_kind::initializer ? frame_kind::initializer_done : frame_kind::result;
    return result;
}

} // namespace

std::vector<char> refused_result(std::span<const std::byte> frame, const char* message) {
    task_header task;
    std::memcpy(&task, frame.data(), sizeof task); // callers pass whole task frames
    result_header result = answer_to(task);
    std::vector<char> output(sizeof result); // the header is written last
    fail(result, output, message);
    std::memcpy(output.data(), &result, sizeof result);
    return output;
}

result_header frame_executor::run(std::span<const std::byte> frame, std::vector<char>& output,
                                  frame_bulk& bulk, function_ref<void(std::uint64_t)> starting) {
    const auto start = std::chrono::steady_clock::now();
    result_header result;
    output.resize(sizeof result); // the header is written last, once it is known
    bulk = {};

    const auto bytes =
        std::span<const char>(reinterpret_cast<const char*>(frame.data()), frame.size());
    task_header task;
    if (bytes.size() < sizeof task) {
        fail(result, output, "procpool: a worker received a malformed task frame");
    } else {
        task = read_pod<task_header>(bytes);
        result = answer_to(task);
        starting(task.task_id);
        execute(task, bytes.subspan(sizeof task), result, output, bulk);
    }
    result.exec_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    std::memcpy(output.data(), &result, sizeof result);
    return result;
}

void frame_executor::execute(const task_header& task, std::span<const char> input,
                             result_header& result, std::vector<char>& output, frame_bulk& bulk) {
    const trampoline_fn trampoline = resolve_trampoline(task.trampoline);
    if (trampoline == nullptr) {
        fail(result, output,
             "procpool: the worker does not know this task's function (no registered "
             "trampoline at that address): it runs a different binary");
        return;
    }
    task_call call;
    call.input = input;
    call.item_count = task.item_count;
    call.output = &output;
    if (task.function.module != 0) {
        call.function = resolve_function(task.function);
        if (call.function == nullptr) {
            fail(result, output,
                 "procpool: the task's function pointer does not point into executable code "
                 "of a module loaded in the worker");
            return;
        }
    }
    try {
        trampoline(call);
    } catch (...) {
        // call.bulk is still empty: a trampoline sets it last, once nothing more can throw.
        result.failed = 1;
        result.ok_count = call.ok_count;
        result.error_offset = output.size() - sizeof(result_header);
        append_current_exception(output, call.stage);
        return;
    }
    result.ok_count = call.ok_count;
    bulk = {call.bulk, std::move(call.bulk_owner), call.bulk_apart};
}

// Both lookups take a lock and scan the module table; a job sends the same function again and
// again, so the last successful answer is kept. Failures are not kept: a module loaded later
// may make the address known.
trampoline_fn frame_executor::resolve_trampoline(code_address a) {
    if (trampoline_ == nullptr || !(a == trampoline_key_)) {
        const void* address = from_code_address(a);
        trampoline_ = address ? find_trampoline(address) : nullptr;
        trampoline_key_ = a;
    }
    return trampoline_;
}

const void* frame_executor::resolve_function(code_address a) {
    if (function_ == nullptr || !(a == function_key_)) {
        function_ = from_code_address(a);
        function_key_ = a;
    }
    return function_;
}

} // namespace procpool::detail
