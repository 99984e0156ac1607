set -u
job() {  # name device rw bs depth; up to 3 tries (a process may die of the 1-vCPU segfault flake)
  for try in 1 2 3; do
    r=$(/usr/bin/blkio $2 $3 $4 $5 $RT 2>/tmp/io.err) && case "$r" in *';'*) echo "MVB $1 blkio-psync-x$5 $r"; return 0;; esac
  done
  echo "MVB $1 failed $(head -c 200 /tmp/io.err | tr '\n' ' ')"
}
RT=2
job raw_randread_4k_qd32 /dev/vda randread 4096 32
job raw_randwrite_4k_qd32 /dev/vda randwrite 4096 32
job raw_randread_4k_qd1 /dev/vda randread 4096 1
job raw_randwrite_4k_qd1 /dev/vda randwrite 4096 1
job raw_seqread_1m_qd4 /dev/vda read 1048576 4
job raw_seqwrite_1m_qd4 /dev/vda write 1048576 4
job qcow2_randread_4k_qd32 /dev/vdb randread 4096 32
job qcow2_randwrite_4k_qd32 /dev/vdb randwrite 4096 32
job qcow2_randread_4k_qd1 /dev/vdb randread 4096 1
job qcow2_randwrite_4k_qd1 /dev/vdb randwrite 4096 1
job qcow2_seqread_1m_qd4 /dev/vdb read 1048576 4
job qcow2_seqwrite_1m_qd4 /dev/vdb write 1048576 4
