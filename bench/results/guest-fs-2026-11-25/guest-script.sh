set -u
RT=2
mount -t virtiofs benchfs /mnt || { echo 'MVB mount failed'; exit 1; }
rm -rf /mnt/fio.dat /mnt/meta
job() {  # name rw
  for try in 1 2 3; do
    r=$(/usr/bin/blkio /mnt/fio.dat $2 1048576 1 $RT 32 0 2>/tmp/fio.err) && case "$r" in *';'*) echo "MVB $1 psync $r"; return 0;; esac
  done
  echo "MVB $1 failed $(head -c 200 /tmp/fio.err | tr '\n' ' ')"
}
job seqwrite_1m write
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
job seqread_1m read
mkdir /mnt/meta && echo "MVB meta $(/usr/bin/fs_meta /mnt/meta 200 2>&1)"
rm -rf /mnt/fio.dat /mnt/meta
umount /mnt
