//! Build script: make the binaries find libtorch at run time and keep CUDA linked.
//!
//! torch-sys links libtorch, but the linker drops `libtorch_cuda` (nothing references it by
//! symbol), and then CUDA is never available at run time. We force it in with `--no-as-needed`
//! when the libtorch in use ships it, and add an rpath to libtorch's lib directory so the
//! binaries run without `LD_LIBRARY_PATH` on the machine that built them.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-changed=build.rs");

    let Some(lib_dir) = torch_lib_dir() else {
        println!("cargo:warning=libtorch's lib directory not found: no rpath, CUDA not forced in");
        return;
    };
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// libtorch's `lib` directory: `$LIBTORCH/lib`, or the one of the Python torch on PATH.
fn torch_lib_dir() -> Option<PathBuf> {
    if let Ok(root) = env::var("LIBTORCH") {
        let dir = PathBuf::from(root).join("lib");
        return dir.is_dir().then_some(dir);
    }
    env::var_os("LIBTORCH_USE_PYTORCH")?;
    let python = env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .args(["-c", "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}
