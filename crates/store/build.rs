fn main() {
    // refinery embeds the SQL files at compile time; rebuild when one is added.
    println!("cargo:rerun-if-changed=migrations");
}
