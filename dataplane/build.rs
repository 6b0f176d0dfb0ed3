//! Compiles the XDP program (`kernel-cfg/xdp/earshot_xdp.c`) with clang into
//! `$OUT_DIR/earshot_xdp.o`, which `src/engine/xdp.rs` embeds.
//!
//! Needs clang and the kernel UAPI headers (Debian: clang, linux-libc-dev, gcc-multilib for
//! `asm/types.h`); `deploy/common.sh` installs them. `CLANG` overrides the compiler.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

const SOURCE: &str = "../kernel-cfg/xdp/earshot_xdp.c";
const INSTALL_HINT: &str =
    "install clang, llvm, linux-libc-dev and gcc-multilib (deploy/common.sh does)";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("earshot_xdp.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());

    let mut cmd = Command::new(&clang);
    // `bpf` would be the build machine's byte order; the program runs on the target's.
    let bpf_target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };
    cmd.args(["-O2", "-g", "-Wall", "-target", bpf_target]);
    // The UAPI headers include <asm/types.h>, which Debian keeps under the multiarch directory;
    // clang's BPF target does not search it by itself.
    if let Some(dir) = multiarch_include_dir() {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.arg("-c").arg(SOURCE).arg("-o").arg(&object);

    match cmd.output() {
        Err(err) => fail(&format!(
            "cannot run `{clang}` to build the XDP program ({err}): {INSTALL_HINT}"
        )),
        Ok(out) if !out.status.success() => {
            // clang's own diagnostics first: a C error is a bug to fix, not a missing package.
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            fail(&format!(
                "`{clang}` failed to compile {SOURCE} (diagnostics above); if headers are missing, {INSTALL_HINT}"
            ))
        }
        Ok(out) => {
            // Warnings are shown, not fatal: another clang version may warn about other things.
            let stderr = String::from_utf8_lossy(&out.stderr);
            for line in stderr.lines().filter(|l| l.contains("warning:")) {
                println!("cargo:warning=earshot_xdp.c: {line}");
            }
        }
    }
}

/// `/usr/include/<multiarch triple>` if it holds `asm/types.h`: from `gcc -dumpmachine` when
/// building for the host, else derived from cargo's `TARGET`.
fn multiarch_include_dir() -> Option<PathBuf> {
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    let mut candidates = Vec::new();
    if target == host
        && let Ok(out) = Command::new("gcc").arg("-dumpmachine").output()
    {
        let triple = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !triple.is_empty() {
            candidates.push(triple);
        }
    }
    // x86_64-unknown-linux-gnu → x86_64-linux-gnu; i686 → i386; the arm variants keep their ABI.
    let mut parts = target.split('-');
    let arch = parts.next().unwrap_or_default();
    let abi = target.rsplit('-').next().unwrap_or("gnu");
    let arch = match arch {
        "i586" | "i686" => "i386",
        "armv7" => "arm",
        other => other,
    };
    candidates.push(format!("{arch}-linux-{abi}"));
    candidates
        .into_iter()
        .map(|triple| Path::new("/usr/include").join(triple))
        .find(|dir| dir.join("asm/types.h").exists())
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}
