// Must not compile: a capturing lambda cannot travel to a worker. The test checks the message.
#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
    procpool::init(argc, argv);
    procpool::pool pool(1);
    int offset = 3;
    return pool.apply([offset](int x) { return x + offset; }, 1);
}
