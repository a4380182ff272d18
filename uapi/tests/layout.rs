//! Compares every Rust uAPI struct with its C definition: the upstream one in
//! the kernel's `linux/iommufd.h` (from the tree's `headers_install`), ours in
//! `uapi/include/linux/iommufd_rs.h`. A C program prints `sizeof` and every
//! field's `offsetof`/`sizeof`; any difference fails the test, and so does a
//! field name the C struct lacks (the C program then does not compile).
//!
//! The header directory comes from `IOMMUFD_RS_KHDR` (set by the Makefile) or
//! the newest kernel build under `~/.cache/iommufd-rs/kbuild/`. Without one the
//! test fails if `IOMMUFD_RS_REQUIRE_KHDR=1` (as in `make check`) and is
//! skipped otherwise.

use iommufd_uapi::ALL_LAYOUTS;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn kernel_headers() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("IOMMUFD_RS_KHDR") {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")?;
    let builds = PathBuf::from(home).join(".cache/iommufd-rs/kbuild");
    std::fs::read_dir(builds)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("usr/include"))
        .find(|p| p.join("linux/iommufd.h").exists())
}

/// Builds and runs the C side; returns its lines `name size` / `name.field off size`.
fn c_layout(khdr: &std::path::Path) -> String {
    let mut prog = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/iommufd.h>\n\
         #include <linux/iommufd_rs.h>\nint main(void)\n{\n",
    );
    for (name, _, fields, _) in ALL_LAYOUTS {
        writeln!(prog, "\tprintf(\"{name} %zu\\n\", sizeof(struct {name}));").unwrap();
        for f in *fields {
            let field = f.name;
            writeln!(
                prog,
                "\tprintf(\"{name}.{field} %zu %zu\\n\", offsetof(struct {name}, {field}), \
                 sizeof(((struct {name} *)0)->{field}));"
            )
            .unwrap();
        }
    }
    prog.push_str("\treturn 0;\n}\n");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uapi-layout");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, prog).unwrap();
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&ours)
        .arg("-I")
        .arg(khdr)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("running the C compiler");
    assert!(
        cc.status.success(),
        "C layout program did not compile (a Rust field the C struct lacks?):\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe)
        .output()
        .expect("running the layout program");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn rust_layout() -> String {
    let mut s = String::new();
    for (name, size, fields, _) in ALL_LAYOUTS {
        writeln!(s, "{name} {size}").unwrap();
        for f in *fields {
            writeln!(s, "{name}.{} {} {}", f.name, f.offset, f.size).unwrap();
        }
    }
    s
}

#[test]
fn rust_structs_match_c_headers() {
    let Some(khdr) = kernel_headers() else {
        assert!(
            std::env::var("IOMMUFD_RS_REQUIRE_KHDR").as_deref() != Ok("1"),
            "no kernel uapi headers found (set IOMMUFD_RS_KHDR)"
        );
        eprintln!("skipped: no kernel uapi headers (run `make kernel` or set IOMMUFD_RS_KHDR)");
        return;
    };
    let c = c_layout(&khdr);
    let rust = rust_layout();
    let diff: Vec<_> = c
        .lines()
        .zip(rust.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("C: {a:<40} Rust: {b}"))
        .collect();
    assert!(diff.is_empty(), "uAPI layout differs:\n{}", diff.join("\n"));
    assert_eq!(c.lines().count(), rust.lines().count());
}

#[test]
fn upstream_structs_are_in_the_upstream_header() {
    // Extension structs must never shadow upstream names and vice versa.
    for (name, _, _, header) in ALL_LAYOUTS {
        assert_eq!(
            name.starts_with("iommu_rs_"),
            *header == "iommufd_rs.h",
            "{name}"
        );
    }
}
