"""repeat-sales: reads a CRM's purchase history and plans repeat-sales actions inside it."""

import os

# The numeric work (playbooks.columnar, the lifetime model) is element-wise over arrays or on 3-4
# parameters: BLAS threads gain nothing there and, on a busy machine, wait for cores at every call
# (the CDNOW fit: 0.58 s with them, 0.03 s on one). Set before numpy loads; an operator's own wins.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
