/* Sequential O_DIRECT read bandwidth of the disk holding a file (bench/disk_read_bw.sh compiles
 * it ad hoc: cc -O2 bench/diskbw.c; it is not part of the CMake build).
 *
 * Reads FILE from the start with O_DIRECT in BLOCK-byte requests (4096-aligned buffer) using T
 * threads, each reading every T-th block (so T requests are in flight, like the tier's readers),
 * for R passes, and prints one JSON line: {"file","bytes","block","threads","direct","passes",
 * "gib_per_s":[each pass],"best_gib_per_s","median_gib_per_s"}. O_DIRECT keeps the page cache
 * out; where the file system refuses it (EINVAL) the tool says so and exits 1.
 * Usage: diskbw FILE [block_bytes=4194304] [threads=1] [passes=3]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd;
static uint64_t file_bytes, block;
static int threads;
static volatile int failed;

static void* reader(void* arg) {
  const int t = (int)(intptr_t)arg;
  void* buf = NULL;
  if (posix_memalign(&buf, 4096, block)) { failed = 1; return NULL; }
  for (uint64_t off = (uint64_t)t * block; off < file_bytes; off += (uint64_t)threads * block) {
    ssize_t n = pread(fd, buf, block, (off_t)off);
    if (n < 0) { perror("diskbw: pread"); failed = 1; break; }
    if (n == 0) break;
  }
  free(buf);
  return NULL;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 2) { fprintf(stderr, "diskbw: usage: diskbw FILE [block_bytes] [threads] [passes]\n"); return 2; }
  block = argc > 2 ? strtoull(argv[2], NULL, 10) : (4u << 20);
  threads = argc > 3 ? atoi(argv[3]) : 1;
  int passes = argc > 4 ? atoi(argv[4]) : 3;
  if (block < 4096 || block % 4096 || threads < 1 || threads > 64 || passes < 1 || passes > 100) {
    fprintf(stderr, "diskbw: block must be a multiple of 4096, threads 1..64, passes 1..100\n");
    return 2;
  }
  fd = open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) { fprintf(stderr, "diskbw: %s: open(O_DIRECT): %s\n", argv[1], strerror(errno)); return 1; }
  struct stat st;
  fstat(fd, &st);
  file_bytes = (uint64_t)st.st_size & ~(uint64_t)4095;
  double gibs[100];
  for (int p = 0; p < passes; ++p) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t tid[64];
    for (int t = 0; t < threads; ++t) pthread_create(&tid[t], NULL, reader, (void*)(intptr_t)t);
    for (int t = 0; t < threads; ++t) pthread_join(tid[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (failed) return 1;
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    gibs[p] = (double)file_bytes / s / (1024.0 * 1024.0 * 1024.0);
  }
  printf("{\"file\":\"%s\",\"bytes\":%llu,\"block\":%llu,\"threads\":%d,\"direct\":true,\"passes\":%d,\"gib_per_s\":[",
         argv[1], (unsigned long long)file_bytes, (unsigned long long)block, threads, passes);
  for (int p = 0; p < passes; ++p) printf("%s%.3f", p ? "," : "", gibs[p]);
  double sorted[100];
  memcpy(sorted, gibs, sizeof(double) * (size_t)passes);
  qsort(sorted, (size_t)passes, sizeof(double), cmp_double);
  printf("],\"best_gib_per_s\":%.3f,\"median_gib_per_s\":%.3f}\n", sorted[passes - 1], sorted[passes / 2]);
  close(fd);
  return 0;
}
