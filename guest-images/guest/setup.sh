#!/bin/sh
# Run once by nvh-init (PID 1): mount, load the NVDIMM/DAX stack, bring up the network, and
# announce readiness on the console. Keep it lean: every second here is a second of every boot.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# initramfs-tools moved devtmpfs onto /dev already; mount it if booted without an initrd.
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -o remount,rw /
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /run/sshd /mnt/dax
hostname nvh-guest
# A third virtio disk carries the modules of a kernel the developer built (--modules or a
# --kernel-tree build); it replaces the image's own /lib/modules.
[ -b /dev/vdc ] && mount -o ro /dev/vdc /lib/modules

# Without udev nothing loads modules for devices; a blind coldplug of every modalias costs
# ~8 s under TCG (drm, ahci, parport...), so load exactly the stack the tests use. Filesystems
# need no preloading: mount(2) asks for fs-xfs itself. The NVDIMM stack loads in the
# background while sshd starts (signed-module loading is slow under TCG); the harness waits
# for /run/nvh-ready after logging in.
(
	# pvpanic: a panic also reaches the harness as QMP's GUEST_PANICKED (built in on
	# the harness's own kernels, a module on Debian's).
	modprobe -q pvpanic_mmio
	modprobe -qa nfit nd_pmem nd_btt dax_pmem device_dax
	# memmap=...!... legacy pmem (the ndctl profile): its region driver, nd_e820
	[ -e /sys/bus/platform/devices/e820_pmem ] && modprobe -q nd_e820
	echo "nvh: nvdimm stack loaded" > /dev/kmsg
	touch /run/nvh-ready
) &
modprobe -q virtio_net
echo 1 > /proc/sys/kernel/sysrq

ip link set lo up
# QEMU user networking: guest 10.0.2.15, gateway 10.0.2.2 (slirp defaults).
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2

echo "nvh: guest ready $(uname -r)" > /dev/kmsg
