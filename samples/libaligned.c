/* A shared library linked for 64 KiB pages (-z max-page-size=0x10000), as
 * arm64 and ppc64 distributions link theirs.  On a 4 KiB-page kernel the
 * dynamic linker leaves the alignment padding between its segments mapped with
 * no access: procmap must show those gaps as part of the library, and still
 * place each segment at the right load bias. */
int aligned_data = 5;                       /* data */
int aligned_bss[5000];                      /* bss */
const int aligned_const[2000] = {1};        /* rodata */

int aligned_func(void)                      /* text */
{
    return aligned_data + aligned_bss[3] + aligned_const[4];
}
