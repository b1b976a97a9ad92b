# Source on the GPU machine (which has no apt): unpacks the Debian packages carried in
# .devdeps/ (libuv, OpenBLAS, cJSON, cmocka: `apt-get download` them there first) into
# /tmp/deps and defines `dmake`, a make that builds against them, plus the library path to
# run what it builds. Usage: . bench/gpu/device_env.sh && dmake -j16 all tests
D=/tmp/deps
if [ ! -d "$D/usr/include" ]; then
    mkdir -p "$D"
    for f in .devdeps/*.deb; do dpkg -x "$f" "$D"; done
fi
L=$D/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$L:$L/openblas-pthread:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PATH="/usr/local/cuda/bin:$PATH"
DEV_CFLAGS="-I$D/usr/include -I$D/usr/include/x86_64-linux-gnu/openblas-pthread -I$D/usr/include/cjson"
DEV_LIBS="-L$L -L$L/openblas-pthread -lopenblas -luv -lcjson -lpthread -ldl -lrt"
# NCCL (tensor parallelism): the toolkit's, else the nvidia-nccl pip package that torch brings
NCCL_ARG=
if [ ! -f /usr/local/cuda/include/nccl.h ]; then
    NH=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null)
    [ -n "$NH" ] && [ -f "$NH/include/nccl.h" ] && NCCL_ARG="NCCL_HOME=$NH"
fi
dmake() {
    make "PKG_CFLAGS=$DEV_CFLAGS" "PKG_LIBS=$DEV_LIBS" "CUDA_ARCH=-gencode arch=compute_90a,code=sm_90a" $NCCL_ARG "$@"
}
