//! Compares every Rust uAPI struct and constant with its C definition: the
//! upstream ones in the kernel's `linux/iommufd.h` and `linux/vfio.h` (from
//! the tree's `headers_install`) and in the selftest header
//! `drivers/iommu/iommufd/iommufd_test.h` (kernel source tree), ours in
//! `uapi/include/linux/iommufd_rs.h`. A C program prints `sizeof` and every
//! field's `offsetof`/`sizeof`, and the value of every constant; any
//! difference fails the test, and so does a field name the C struct lacks
//! (the C program then does not compile).
//!
//! Rust-only fields stand for bytes the C struct has but does not name: a
//! `__pad` field is checked against the gap between its neighbours in C (or
//! the tail up to `sizeof`), and the fields listed in [`UNNAMED`] against the
//! C expressions given there.
//!
//! The header directory comes from `IOMMUFD_RS_KHDR` (set by the Makefile) or
//! the newest kernel build under `~/.cache/iommufd-rs/kbuild/`; the source
//! tree from `IOMMUFD_RS_KSRC`, else the `source` link (or the directory
//! itself) of the build tree that holds the headers, else the kernel source
//! under `~/.cache/iommufd-rs/src/`. Without them the test fails if
//! `IOMMUFD_RS_REQUIRE_KHDR=1` (as in `make check`) and is skipped otherwise.

use iommufd_uapi::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `iommufd_test.h` lives inside a kernel source tree.
const TEST_HEADER_DIR: &str = "drivers/iommu/iommufd";

/// Rust fields for an unnamed C member: `(C struct, Rust field, C offset
/// expression, C size expression)`.
const UNNAMED: &[(&str, &str, &str, &str)] = &[(
    "iommu_test_cmd",
    "payload",
    "offsetof(struct iommu_test_cmd, add_reserved)",
    "offsetof(struct iommu_test_cmd, last) - offsetof(struct iommu_test_cmd, add_reserved)",
)];

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

/// The kernel source tree that goes with the headers in `khdr`
/// (`<kdir>/usr/include`).
fn kernel_source(khdr: &Path) -> Option<PathBuf> {
    let has_test_header = |dir: &Path| dir.join(TEST_HEADER_DIR).join("iommufd_test.h").exists();
    if let Some(dir) = std::env::var_os("IOMMUFD_RS_KSRC") {
        return Some(PathBuf::from(dir));
    }
    if let Some(kdir) = khdr.parent().and_then(Path::parent) {
        let found = [kdir.join("source"), kdir.to_path_buf()]
            .into_iter()
            .find(|d| has_test_header(d));
        if found.is_some() {
            return found;
        }
    }
    let home = std::env::var_os("HOME")?;
    let sources = PathBuf::from(home).join(".cache/iommufd-rs/src");
    std::fs::read_dir(sources)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| has_test_header(p))
}

fn require_khdr() -> bool {
    std::env::var("IOMMUFD_RS_REQUIRE_KHDR").as_deref() == Ok("1")
}

/// The C type of a `C_NAME`: `struct tag`, or for `tag.member` the type of
/// the unnamed struct `member` of `struct tag`.
fn c_type(name: &str) -> String {
    match name.split_once('.') {
        Some((outer, member)) => format!("__typeof__(((struct {outer} *)0)->{member})"),
        None => format!("struct {name}"),
    }
}

/// C expressions `(offset, size)` for every field of a struct.
fn c_fields(name: &str, fields: &[FieldLayout]) -> Vec<(String, String)> {
    let ty = c_type(name);
    let is_pad = |f: &FieldLayout| f.name.starts_with("__pad");
    let mut exprs: Vec<Option<(String, String)>> = fields
        .iter()
        .map(|f| {
            if is_pad(f) {
                return None;
            }
            if let Some((_, _, off, size)) = UNNAMED.iter().find(|u| u.0 == name && u.1 == f.name) {
                return Some((off.to_string(), size.to_string()));
            }
            Some((
                format!("offsetof({ty}, {})", f.name),
                format!("sizeof(((({ty} *)0)->{}))", f.name),
            ))
        })
        .collect();
    // A pad spans from the end of the previous field to the start of the
    // next one, or to the end of the struct.
    for i in 0..fields.len() {
        if exprs[i].is_some() {
            continue;
        }
        let start = match i.checked_sub(1) {
            Some(p) => {
                let (off, size) = exprs[p].as_ref().expect("two pads in a row");
                format!("({off}) + ({size})")
            }
            None => "0".to_string(),
        };
        let end = match fields.get(i + 1) {
            Some(next) => {
                assert!(!is_pad(next), "{name}: two pads in a row");
                exprs[i + 1].as_ref().unwrap().0.clone()
            }
            None => format!("sizeof({ty})"),
        };
        exprs[i] = Some((start.clone(), format!("({end}) - ({start})")));
    }
    exprs.into_iter().map(Option::unwrap).collect()
}

/// A constant: its C expression, its Rust value, the header defining it.
type Const = (&'static str, u64, &'static str);

macro_rules! consts {
    ($header:literal: $($name:ident $(= $c:literal)?),* $(,)?) => {
        [$(consts!(@one $header, $name $(, $c)?)),*]
    };
    (@one $header:literal, $name:ident) => {
        (stringify!($name), u64::from($name), $header)
    };
    (@one $header:literal, $name:ident, $c:literal) => {
        ($c, u64::from($name), $header)
    };
}

/// Like `consts!` for the numbers in `iommufd_uapi::cmd`, whose C names are
/// `prefix` followed by the Rust name unless given.
macro_rules! cmd_consts {
    ($header:literal, $prefix:literal: $($name:ident $(= $c:literal)?),* $(,)?) => {
        [$(cmd_consts!(@one $header, $prefix, $name $(, $c)?)),*]
    };
    (@one $header:literal, $prefix:literal, $name:ident) => {
        (concat!($prefix, stringify!($name)), u64::from(cmd::$name), $header)
    };
    (@one $header:literal, $prefix:literal, $name:ident, $c:literal) => {
        ($c, u64::from(cmd::$name), $header)
    };
}

fn all_consts() -> Vec<Const> {
    let iommufd = consts!["iommufd.h":
        IOMMUFD_TYPE, IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS,
        IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
        IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO,
        IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE,
        IOMMU_FAULT_QUEUE_ALLOC, IOMMU_IOAS_MAP_FILE, IOMMU_VIOMMU_ALLOC,
        IOMMU_VDEVICE_ALLOC, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_VEVENTQ_ALLOC,
        IOMMU_HW_QUEUE_ALLOC, IOMMU_IOAS_NOIOMMU_GET_PA,
        IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE,
        IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET,
        IOMMU_OPTION_OP_GET, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, IOMMU_VFIO_IOAS_CLEAR,
        IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_ALLOC_PASID,
        IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_DATA_ARM_SMMUV3,
        IOMMU_HWPT_DATA_AMD_GUEST,
        IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_INTEL_VTD,
        IOMMU_HW_INFO_TYPE_ARM_SMMUV3, IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
        IOMMU_HW_INFO_TYPE_AMD,
        IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_PASID_EXEC, IOMMU_HW_CAP_PCI_PASID_PRIV,
        IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, IOMMU_HW_INFO_FLAG_INPUT_TYPE,
        IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
        IOMMU_PGFAULT_FLAGS_PASID_VALID, IOMMU_PGFAULT_FLAGS_LAST_PAGE,
        IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_WRITE, IOMMU_PGFAULT_PERM_EXEC,
        IOMMU_PGFAULT_PERM_PRIV, IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_INVALID,
        IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
        IOMMU_VIOMMU_TYPE_DEFAULT, IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
        IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
        IOMMU_VEVENTQ_FLAG_LOST_EVENTS, IOMMU_VEVENTQ_TYPE_DEFAULT,
        IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV,
        IOMMU_HW_QUEUE_TYPE_DEFAULT, IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
    ];
    let cmds = cmd_consts!["iommufd.h", "IOMMUFD_CMD_":
        BASE, DESTROY, IOAS_ALLOC, IOAS_ALLOW_IOVAS, IOAS_COPY, IOAS_IOVA_RANGES, IOAS_MAP,
        IOAS_UNMAP, OPTION, VFIO_IOAS, HWPT_ALLOC, GET_HW_INFO, HWPT_SET_DIRTY_TRACKING,
        HWPT_GET_DIRTY_BITMAP, HWPT_INVALIDATE, FAULT_QUEUE_ALLOC, IOAS_MAP_FILE,
        VIOMMU_ALLOC, VDEVICE_ALLOC, IOAS_CHANGE_PROCESS, VEVENTQ_ALLOC, HW_QUEUE_ALLOC,
        IOAS_NOIOMMU_GET_PA, LAST_UPSTREAM = "IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA",
        TEST = "IOMMUFD_CMD_BASE + 32",
    ];
    let rs = consts!["iommufd_rs.h":
        IOMMU_RS_INFO, IOMMU_RS_INFO_ABI_VERSION,
    ];
    let rs_cmds = cmd_consts!["iommufd_rs.h", "IOMMUFD_RS_CMD_":
        RS_BASE = "IOMMUFD_RS_CMD_BASE", RS_INFO = "IOMMUFD_RS_CMD_INFO",
    ];
    let vfio = consts!["vfio.h":
        VFIO_TYPE, VFIO_BASE, VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU,
        VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES,
        VFIO_API_VERSION, VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_IOMMU,
        VFIO_TYPE1V2_IOMMU = "VFIO_TYPE1v2_IOMMU", VFIO_DMA_CC_IOMMU,
        VFIO_TYPE1_NESTING_IOMMU = "__VFIO_RESERVED_TYPE1_NESTING_IOMMU",
        VFIO_NOIOMMU_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR,
        VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_CAPS,
        VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
        VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
        VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_MAP_FLAG_VADDR,
        VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL,
        VFIO_DMA_UNMAP_FLAG_VADDR,
    ];
    let test = consts!["iommufd_test.h":
        IOMMU_TEST_CMD,
        IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MD_CHECK_MAP,
        IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_CREATE_ACCESS,
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_PAGES,
        IOMMU_TEST_OP_ACCESS_RW, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
        IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
        IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, IOMMU_TEST_OP_DIRTY, IOMMU_TEST_OP_MD_CHECK_IOTLB,
        IOMMU_TEST_OP_TRIGGER_IOPF, IOMMU_TEST_OP_DEV_CHECK_CACHE,
        IOMMU_TEST_OP_TRIGGER_VEVENT, IOMMU_TEST_OP_PASID_ATTACH,
        IOMMU_TEST_OP_PASID_REPLACE, IOMMU_TEST_OP_PASID_DETACH,
        IOMMU_TEST_OP_PASID_CHECK_HWPT, IOMMU_TEST_OP_DMABUF_GET,
        IOMMU_TEST_OP_DMABUF_REVOKE,
        MOCK_IOMMUPT_DEFAULT, MOCK_IOMMUPT_HUGE, MOCK_APERTURE_START, MOCK_APERTURE_LAST,
        MOCK_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE, MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_ACCESS_SYZ,
        MOCK_ACCESS_RW_WRITE, MOCK_ACCESS_RW_SLOW_PATH,
        MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_DEVICE_NO_DIRTY,
        MOCK_FLAGS_DEVICE_PASID, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
        MOCK_NESTED_DOMAIN_IOTLB_NUM, MOCK_DEV_CACHE_ID_MAX, MOCK_DEV_CACHE_NUM,
        IOMMU_TEST_PASID_RESERVED, MOCK_PASID_WIDTH,
        IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HWPT_DATA_SELFTEST,
        IOMMU_TEST_IOTLB_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT,
        IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
        IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_VIOMMU_TYPE_SELFTEST,
        IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID,
        IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_HW_QUEUE_MAX,
    ];
    let mut all = Vec::new();
    all.extend(iommufd);
    all.extend(cmds);
    all.extend(rs);
    all.extend(rs_cmds);
    all.extend(vfio);
    all.extend(test);
    all
}

/// Whether the selftest header is compiled in (it needs the source tree).
fn wanted(header: &str, with_test: bool) -> bool {
    with_test || header != "iommufd_test.h"
}

/// Builds and runs the C side; returns its lines `name size` /
/// `name.field off size` / `CONST value`.
fn c_layout(khdr: &Path, ksrc: Option<&Path>) -> String {
    let mut prog = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/iommufd.h>\n\
         #include <linux/vfio.h>\n#include <linux/iommufd_rs.h>\n",
    );
    if ksrc.is_some() {
        prog.push_str("#include <iommufd_test.h>\n");
    }
    prog.push_str("int main(void)\n{\n");
    for (name, _, fields, header) in ALL_LAYOUTS {
        if !wanted(header, ksrc.is_some()) {
            continue;
        }
        let ty = c_type(name);
        writeln!(prog, "\tprintf(\"{name} %zu\\n\", sizeof({ty}));").unwrap();
        for (f, (off, size)) in fields.iter().zip(c_fields(name, fields)) {
            let field = f.name;
            writeln!(
                prog,
                "\tprintf(\"{name}.{field} %zu %zu\\n\", (size_t)({off}), (size_t)({size}));"
            )
            .unwrap();
        }
    }
    for (c, _, header) in all_consts() {
        if wanted(header, ksrc.is_some()) {
            writeln!(
                prog,
                "\tprintf(\"{c} %llu\\n\", (unsigned long long)({c}));"
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
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&ours)
        .arg("-I")
        .arg(khdr);
    if let Some(ksrc) = ksrc {
        cc.arg("-I").arg(ksrc.join(TEST_HEADER_DIR));
    }
    let cc = cc
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

fn rust_layout(with_test: bool) -> String {
    let mut s = String::new();
    for (name, size, fields, header) in ALL_LAYOUTS {
        if !wanted(header, with_test) {
            continue;
        }
        writeln!(s, "{name} {size}").unwrap();
        for f in *fields {
            writeln!(s, "{name}.{} {} {}", f.name, f.offset, f.size).unwrap();
        }
    }
    for (c, value, header) in all_consts() {
        if wanted(header, with_test) {
            writeln!(s, "{c} {value}").unwrap();
        }
    }
    s
}

#[test]
fn rust_structs_match_c_headers() {
    let Some(khdr) = kernel_headers() else {
        assert!(
            !require_khdr(),
            "no kernel uapi headers found (set IOMMUFD_RS_KHDR)"
        );
        eprintln!("skipped: no kernel uapi headers (run `make kernel` or set IOMMUFD_RS_KHDR)");
        return;
    };
    let ksrc = kernel_source(&khdr);
    if ksrc.is_none() {
        assert!(
            !require_khdr(),
            "no kernel source tree with {TEST_HEADER_DIR}/iommufd_test.h (set IOMMUFD_RS_KSRC)"
        );
        eprintln!("not checking iommufd_test.h: no kernel source tree (set IOMMUFD_RS_KSRC)");
    }
    let c = c_layout(&khdr, ksrc.as_deref());
    let rust = rust_layout(ksrc.is_some());
    let diff: Vec<_> = c
        .lines()
        .zip(rust.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("C: {a:<50} Rust: {b}"))
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
        assert!(
            ["iommufd.h", "iommufd_rs.h", "vfio.h", "iommufd_test.h"].contains(header),
            "{name}: unknown header {header}"
        );
        // Only the selftest command has unnamed members.
        assert_eq!(
            name.contains('.'),
            name.starts_with("iommu_test_cmd."),
            "{name}"
        );
    }
}

#[test]
fn test_cmd_payload_round_trips() {
    let mut cmd = IommuTestCmd {
        payload: [u64::MAX; 6],
        ..Default::default()
    };
    let refs = TestCheckRefs {
        length: 0x1000,
        uptr: 0xdead_0000,
        refs: 3,
        ..Default::default()
    };
    cmd.set_payload(&refs);
    assert_eq!(cmd.payload::<TestCheckRefs>(), refs);
    // The rest of the union is zeroed.
    assert_eq!(cmd.payload[3..], [0; 3]);
    assert_eq!(cmd.payload::<TestMemoryLimit>().limit, 0x1000);

    let dirty = TestDirty {
        flags: 1,
        out_nr_dirty: 7,
        ..Default::default()
    };
    cmd.set_payload(&dirty);
    assert_eq!(cmd.payload::<TestDirty>(), dirty);
    assert_eq!(
        std::mem::size_of::<IommuTestCmd>(),
        72,
        "sizeof(struct iommu_test_cmd)"
    );
}

#[test]
fn every_test_member_fits_the_payload() {
    // Instantiating payload::<T>() runs the compile-time size check.
    let cmd = IommuTestCmd::default();
    let _ = (
        cmd.payload::<TestAddReserved>(),
        cmd.payload::<TestMockDomain>(),
        cmd.payload::<TestMockDomainFlags>(),
        cmd.payload::<TestMockDomainReplace>(),
        cmd.payload::<TestCheckMap>(),
        cmd.payload::<TestCheckRefs>(),
        cmd.payload::<TestCreateAccess>(),
        cmd.payload::<TestDestroyAccessPages>(),
        cmd.payload::<TestAccessPages>(),
        cmd.payload::<TestAccessRw>(),
        cmd.payload::<TestMemoryLimit>(),
        cmd.payload::<TestAccessReplaceIoas>(),
    );
    let _ = (
        cmd.payload::<TestDirty>(),
        cmd.payload::<TestCheckIotlb>(),
        cmd.payload::<TestTriggerIopf>(),
        cmd.payload::<TestCheckDevCache>(),
        cmd.payload::<TestTriggerVevent>(),
        cmd.payload::<TestPasidAttach>(),
        cmd.payload::<TestPasidReplace>(),
        cmd.payload::<TestPasidDetach>(),
        cmd.payload::<TestPasidCheck>(),
        cmd.payload::<TestDmabufGet>(),
        cmd.payload::<TestDmabufRevoke>(),
    );
    assert_eq!(IommuTestCmd::PAYLOAD_SIZE, 48);
}
