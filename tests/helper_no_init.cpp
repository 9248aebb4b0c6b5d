// A program that forgets procpool::init. Its workers reach the pool constructor themselves;
// they must refuse (no fork bomb) and the parent's pool must fail with a clear error.
#include <procpool/procpool.hpp>

#include <iostream>

int square(int x) {
    return x * x;
}

int main() {
    try {
        procpool::pool pool(2);
        std::cout << pool.apply(square, 3) << std::endl;
        return 0;
    } catch (const procpool::error& e) {
        std::cout << "error: " << e.what() << std::endl;
        return 2;
    }
}
