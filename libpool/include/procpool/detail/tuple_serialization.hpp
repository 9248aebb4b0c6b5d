// Boost.Serialization support for std::tuple, which Boost 1.81 does not ship.
//
// A tuple is written as its elements in order and nothing else: it is marked
// object_serializable (no class id or version in the stream) and never tracked (tuples are
// values; tracking them by address would be wrong for temporaries). So the pool can write the
// arguments of apply_async(f, a, b) one by one, with no tuple built and no copy of a large
// argument, and the worker reads them back as one std::tuple.
#pragma once

#include <boost/serialization/level.hpp>
#include <boost/serialization/serialization.hpp>
#include <boost/serialization/tracking.hpp>

#include <tuple>

namespace boost::serialization {

template <class... Ts>
struct implementation_level_impl<const std::tuple<Ts...>> {
    typedef mpl::integral_c_tag tag;
    typedef mpl::int_<object_serializable> type;
    BOOST_STATIC_CONSTANT(int, value = implementation_level_impl::type::value);
};

template <class... Ts>
struct tracking_level<std::tuple<Ts...>> {
    typedef mpl::integral_c_tag tag;
    typedef mpl::int_<track_never> type;
    BOOST_STATIC_CONSTANT(int, value = tracking_level::type::value);
};

template <class Archive, class... Ts>
void serialize(Archive& ar, std::tuple<Ts...>& t, const unsigned int /*version*/) {
    std::apply([&ar](auto&... element) { ((ar & element), ...); }, t);
}

} // namespace boost::serialization
