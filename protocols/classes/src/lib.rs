//! What a command may do, in words every protocol shares: a statement, a shell command
//! or an HTTP request is judged by the [`Class`]es its protocol's classifier finds,
//! and policy rules name those classes. Protocol crates produce [`Classes`]; the
//! gateway's policy reads them, and knows no protocol.

use std::fmt;

/// One thing a command may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads data without side effects.
    Read,
    /// Changes rows.
    Write,
    /// Changes rows the statement does not pin by key (a range, a join, a MERGE, an
    /// upsert from a query): how many, only the database can say. Allowed statements
    /// of this class run under the rows-affected guard.
    Bulk,
    /// Changes the schema.
    Ddl,
    /// Removes data or objects wholesale (DROP, TRUNCATE, DELETE/UPDATE without WHERE).
    Destructive,
    /// Changes who may do what (GRANT, roles, SET ROLE, ALTER SYSTEM).
    Privilege,
    /// Acts on the server itself (kill backends, files, programs, maintenance).
    Admin,
    /// Transaction control.
    Transaction,
    /// Session settings and notifications.
    Session,
    /// Not understood: treated as the strictest case by policy.
    Unknown,
}

impl Class {
    /// Every class, in display order.
    pub const ALL: [Class; 10] = [
        Class::Read,
        Class::Write,
        Class::Bulk,
        Class::Ddl,
        Class::Destructive,
        Class::Privilege,
        Class::Admin,
        Class::Transaction,
        Class::Session,
        Class::Unknown,
    ];

    /// The name used in configs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Bulk => "bulk",
            Class::Ddl => "ddl",
            Class::Destructive => "destructive",
            Class::Privilege => "privilege",
            Class::Admin => "admin",
            Class::Transaction => "transaction",
            Class::Session => "session",
            Class::Unknown => "unknown",
        }
    }

    /// Parses a class name.
    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of classes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Classes(u16);

impl Classes {
    /// The empty set.
    pub const NONE: Classes = Classes(0);

    /// A set of the given classes.
    pub fn of(classes: &[Class]) -> Classes {
        Classes(classes.iter().fold(0, |acc, c| acc | c.bit()))
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Class) -> bool {
        self.0 & c.bit() != 0
    }

    /// The set without `c`.
    pub fn without(self, c: Class) -> Classes {
        Classes(self.0 & !c.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes in display order.
    pub fn iter(self) -> impl Iterator<Item = Class> {
        Class::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl std::ops::BitOr for Classes {
    type Output = Classes;
    fn bitor(self, rhs: Classes) -> Classes {
        Classes(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Classes {
    fn bitor_assign(&mut self, rhs: Classes) {
        self.0 |= rhs.0;
    }
}

impl From<Class> for Classes {
    fn from(c: Class) -> Classes {
        Classes(c.bit())
    }
}

impl fmt::Display for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Class::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Classes({self})")
    }
}

impl serde::Serialize for Class {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A set serializes as the list of its classes' names, in display order.
impl serde::Serialize for Classes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets_keep_display_order() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.as_str()), Some(c));
        }
        assert_eq!(Class::parse("drop"), None);
        let set = Classes::of(&[Class::Unknown, Class::Read]) | Class::Write.into();
        assert_eq!(set.to_string(), "read,write,unknown");
        assert!(set.contains(Class::Write) && !set.without(Class::Write).contains(Class::Write));
        assert!(Classes::NONE.is_empty());
    }
}
