#include <pgherald/master_watch.h>
int main() { return 0; }
