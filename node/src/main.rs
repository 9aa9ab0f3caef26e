//! The `mortar` binary: the stock node, hosting the example actors, made as any application's node
//! binary is (see `mortar_node::binary`): the command line, logging, metrics and allocator come
//! from the library.

mortar_node::node_main!(mortar_node::actor::examples::registry());
