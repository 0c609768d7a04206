"""From user options (profile, kernel, accel, recipe) to a bootable GuestConfig.

Shared by the CLI and by pytest's conftest so `nvdimm-harness run` and `pytest testcases/`
resolve the same things the same way. Cheap checks come first so bad input fails in
milliseconds, before any image build or boot. The options themselves, and the one table all
their command lines derive from, are harness.guest_options (re-exported here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import kconfig, progress
from .accel import choose_accel
from .errors import InfraError, UsageError
from .guest import GuestConfig, KernelChoice
from .guest_options import GuestOptions
from .image import GuestImage, ensure_image, load_recipe
from .profile import MachineProfile, load_profile

# Offset and magic of the x86 boot protocol header (Documentation/arch/x86/boot.rst).
BZIMAGE_MAGIC_OFFSET = 0x202
BZIMAGE_MAGIC = b"HdrS"


def check_kernel(path: Path) -> None:
    """A bzImage, or an ELF vmlinux with a PVH entry note (QEMU boots both with -kernel)."""
    if not path.exists():
        raise UsageError(f"--kernel: {path}: no such file")
    if not path.is_file():
        raise UsageError(f"--kernel: {path}: not a regular file")
    with open(path, "rb") as f:
        if f.read(4) == b"\x7fELF":
            from .vmlinux import has_pvh_entry

            if not has_pvh_entry(path.read_bytes()):
                raise UsageError(f"--kernel: {path}: an ELF without a PVH entry note (build "
                                 "with CONFIG_PVH, or give the bzImage)")
            return
        f.seek(BZIMAGE_MAGIC_OFFSET)
        if f.read(4) != BZIMAGE_MAGIC:
            raise UsageError(f"--kernel: {path}: not an x86 kernel image (no 'HdrS' boot header)")


def validate(options: GuestOptions) -> MachineProfile:
    """Everything that can be checked without building or booting. Raises UsageError."""
    profile = load_profile(options.profile)
    if options.accel is not None and options.accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel: unknown accelerator {options.accel!r} (use auto, kvm or tcg)")
    given = [flag for flag, value in (("--kernel", options.kernel),
                                      ("--kernel-package", options.kernel_package),
                                      ("--kernel-tree", options.kernel_tree)) if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give one of them")
    if options.kernel_package:
        from .kernel_package import parse_spec

        parse_spec(options.kernel_package)
    if options.kernel:
        check_kernel(Path(options.kernel))
    if (options.patches or options.configs) and not options.kernel_tree:
        raise UsageError("--patches/--config need --kernel-tree")
    if options.modules and not options.kernel:
        raise UsageError("--modules goes with --kernel (a --kernel-tree build ships its own)")
    if options.modules and not Path(options.modules).is_dir():
        raise UsageError(f"--modules: {options.modules}: no such directory")
    if options.kernel_tree:
        from .kernel import check_tree, parse_series

        tree = Path(options.kernel_tree)
        check_tree(tree, "--kernel-tree")
        for spec in options.patches:
            parse_series(spec, tree)
        for frag in options.configs:
            kconfig.load_fragment(frag)
    load_recipe(options.recipe)
    check_backing_room(profile)
    return profile


def check_backing_room(profile: MachineProfile, directory: Path | None = None) -> None:
    """The profile's NVDIMM and scratch backing files (sparse, in the temp directory) must be
    creatable and may be filled by the guest: a 100T NVDIMM fails here in one line (exit 3,
    a host limit), not as 'File too large' in every test."""
    import resource
    import tempfile

    where = Path(directory or tempfile.gettempdir())
    sizes = [(f"nvdimms[{i}]", d.backend_size) for i, d in enumerate(profile.nvdimms)]
    sizes.append(("scratch_disk", profile.scratch_disk.size))
    name, largest = max(sizes, key=lambda x: x[1])
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and largest > soft:
        raise InfraError(f"profile {profile.name!r}: {name}: a {largest >> 20} MiB backing file "
                         f"exceeds this shell's file-size limit (ulimit -f: {soft >> 10} KiB)")
    try:
        with tempfile.TemporaryFile(dir=where) as probe:
            probe.truncate(largest)
    except OSError as e:
        raise InfraError(f"profile {profile.name!r}: {name}: cannot create a {largest >> 20} "
                         f"MiB backing file in {where}: {e.strerror}") from None
    total = sum(size for _, size in sizes)
    free = shutil.disk_usage(where).free
    if total > free:
        raise InfraError(f"profile {profile.name!r}: its NVDIMMs and scratch disk ({total >> 30} "
                         f"GiB) do not fit in the {free >> 30} GiB free in {where}, which the "
                         "guest may fill (set TMPDIR elsewhere or use smaller NVDIMMs)")


def kernel_choice(options: GuestOptions, image: GuestImage) -> KernelChoice:
    if options.kernel_tree:
        from .kernel import DEFAULT_FRAGMENTS, build_kernel

        built = build_kernel(Path(options.kernel_tree), list(options.patches),
                             ["nvdimm", *options.configs] if options.configs
                             else list(DEFAULT_FRAGMENTS))
        cost = kconfig.debug_cost((built.directory / "config").read_text(errors="replace"))
        if cost.any:
            progress.say(cost.why)
        return KernelChoice(kernel=built.boot_image, initrd=None, source="tree",
                            slowdown=cost.slowdown, cmdline_extra=cost.cmdline,
                            checkers=cost.checkers,
                            description=f"built from {built.manifest['tree']} "
                                        f"({built.manifest['tree_identity']}), cache "
                                        f"{built.directory}",
                            modules_image=built.modules_image, patches=built.patches,
                            config_hash=built.config_hash, vmlinux=built.vmlinux,
                            modules_dir=built.directory / "modules",
                            source_root=built.source_dir)
    if options.kernel_package:
        from .kernel_package import ensure_package, parse_spec

        pkg = ensure_package(parse_spec(options.kernel_package))
        return KernelChoice(kernel=pkg.boot_image, initrd=pkg.initrd, source="package",
                            description=f"Debian package {pkg.name} {pkg.version}, cache "
                                        f"{pkg.directory}",
                            modules_image=pkg.modules_image, package=pkg.name,
                            package_version=pkg.version)
    if options.kernel:
        from .kernel import modules_image_for

        path = Path(options.kernel).resolve()
        modules = modules_image_for(Path(options.modules)) if options.modules else None
        return KernelChoice(kernel=path, initrd=None, source="image",
                            description=f"kernel {path}", modules_image=modules,
                            vmlinux=vmlinux_beside(path),
                            modules_dir=Path(options.modules) if options.modules else None)
    return KernelChoice(kernel=image.pvh_kernel or image.kernel, initrd=image.initrd,
                        source="distro",
                        description=f"{image.manifest.get('recipe')} stock kernel")


def vmlinux_beside(kernel: Path) -> Path | None:
    """The vmlinux of a --kernel from a build tree: the file itself when it is one, else
    TREE/vmlinux for TREE/arch/x86/boot/bzImage."""
    if kernel.name != "bzImage":
        return kernel
    tree_vmlinux = kernel.parents[3] / "vmlinux" if len(kernel.parents) > 3 else None
    return tree_vmlinux if tree_vmlinux and tree_vmlinux.is_file() else None


# KASAN takes 1/8 of the guest's RAM for its shadow and ~50% more for its quarantine and
# redzones (lib/Kconfig.kasan): a KASAN kernel gets this profile unless one was asked for.
KASAN_PROFILE = "debug"


def prepare(options: GuestOptions) -> GuestConfig:
    profile = validate(options)
    image = ensure_image(load_recipe(options.recipe))
    kernel = kernel_choice(options, image)
    if "kasan_multi_shot" in kernel.cmdline_extra and options.profile is None:
        profile = load_profile(KASAN_PROFILE)
        progress.say(f"KASAN kernel: profile {profile.name!r} ({profile.memory // 2**20} MiB RAM)")
    accel = choose_accel(options.accel or profile.accel, kernel.kernel)
    return GuestConfig(profile=profile, image=image, kernel=kernel, accel=accel)
