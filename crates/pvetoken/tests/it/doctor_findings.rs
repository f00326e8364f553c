//! `pvetoken doctor`: each finding id provoked on its own against the lab (or a crafted token file), one test per
//! fault, asserting the id, its severity and that its fix is printed.
