//! Generates the C header with cbindgen. The header is committed in `include/`; the build
//! always writes a fresh copy to `target/binmalloc.h.generated`, and `make check-header` fails
//! when the two differ. `make header` (BINMALLOC_WRITE_HEADER=1) refreshes the committed one.

use std::env;
use std::path::PathBuf;

fn main() {
    // A SONAME lets tools that interpose malloc (valgrind's --soname-synonyms) and the dynamic
    // linker name the library. Only with the C ABI: cargo also applies this argument to cdylibs
    // that depend on binmalloc (the coursework library), which must keep their own name.
    if env::var_os("CARGO_FEATURE_C_ABI").is_some() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbinmalloc.so");
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=BINMALLOC_WRITE_HEADER");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let target_dir = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| crate_dir.join("target"));
    std::fs::create_dir_all(&target_dir).unwrap();
    bindings.write_to_file(target_dir.join("binmalloc.h.generated"));
    let committed = crate_dir.join("include/binmalloc.h");
    if env::var_os("BINMALLOC_WRITE_HEADER").is_some() || !committed.exists() {
        bindings.write_to_file(committed);
    }
}
