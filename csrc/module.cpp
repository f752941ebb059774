// The Python module fastconv._C: empty on purpose. Loading it runs the TORCH_LIBRARY_IMPL blocks of
// every csrc/<op>/*.cu, which attach CUDA kernels to schemas declared in fastconv/ops/*.py.
#include <Python.h>

static struct PyModuleDef fastconv_c_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&fastconv_c_module); }
