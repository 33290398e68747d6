//! Compiles the XDP classifier (src/bpf/classifier.bpf.c) with clang into OUT_DIR, where
//! `include_bytes!` picks it up. Needs clang and the libbpf headers (`tools/setup` installs them:
//! Debian packages clang and libbpf-dev). `XIPSEC_CLANG` overrides the compiler.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/bpf/classifier.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=XIPSEC_CLANG");

    let clang = env::var("XIPSEC_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("classifier.bpf.o");

    let mut command = Command::new(&clang);
    command
        .args([
            "-O2", "-g", "-mcpu=v3", "-Wall", "-Werror", "-target", "bpf",
        ])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(SOURCE)
        .arg("-o")
        .arg(&out);

    let status = match command.status() {
        Ok(status) => status,
        Err(error) => fail(&format!(
            "cannot run `{clang}` ({error}): the XDP classifier is C compiled with clang. \
             Run tools/setup as root (it installs the Debian packages clang and libbpf-dev), \
             or point XIPSEC_CLANG at a clang that has the BPF target."
        )),
    };
    if !status.success() {
        let headers = std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists();
        fail(&format!(
            "`{clang}` failed to compile {SOURCE} ({status}).{}",
            if headers {
                ""
            } else {
                " /usr/include/bpf/bpf_helpers.h is missing: run tools/setup as root \
                 (Debian package libbpf-dev)."
            }
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: xipsec-ebpf: {message}");
    panic!("xipsec-ebpf: {message}");
}
