//! envd library: placeholder until the envd helper lands it.
