/* Plain C against the installed C API. */
#include <pgherald/master_watch_c.h>
#include <stdio.h>

int main(void) {
  pgherald_watch_options options;
  pgherald_master_info info;
  char err[256];
  pgherald_watch* watch;
  pgherald_watch_options_init(&options);
  options.zk_connect = "127.0.0.1:32002";
  options.cluster = "c1";
  watch = pgherald_watch_start(&options, err, sizeof err);
  if (watch == NULL) {
    fprintf(stderr, "start failed: %s\n", err);
    return 1;
  }
  pgherald_watch_current(watch, &info);
  printf("status=%s\n", pgherald_status_name(info.status));
  pgherald_watch_stop(watch);
  return info.status == PGHERALD_DISCONNECTED ? 0 : 1;
}
