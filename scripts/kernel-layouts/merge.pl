#!/usr/bin/perl
# Merges the kernel-layout probes' results into driver/layouts/kernel-layouts.json and
# kernel-constants.json (called by scripts/kernel-layouts.sh; core Perl only, no modules).
#
#   merge.pl OUT_DIR  SET LABEL ASM PREPROCESSED ROOT  [SET LABEL ASM PREPROCESSED ROOT ...]
#
# SET is wine, mingw or documented; LABEL names the header set in "source" strings
# ("wine-8.0~repack-4"); ASM is the probe compiled with -S; PREPROCESSED is the same probe
# compiled with -E -dD (or "-"), used to find the header that defines each item; ROOT is the
# directory prefix stripped from header paths (or "-").
#
# Rules: an item defined by several sets is taken from the preferred one that has every
# recorded field (Filter Manager items, FLT*: wine, mingw, documented; everything else:
# mingw, wine, documented) and every other set is cross-checked against it: any shared field
# or constant that differs is fatal, and so is a different size when both sets have the same
# fields. The one exception is a documented correction: documented.c states (KL_CORRECTS) that
# a named header set's header defines a constant as a given value, which the documentation
# contradicts. The documented value is then taken, and its source says which header disagrees
# and with what value; the correction itself is fatal unless that header still has exactly the
# stated value (so a header that is fixed, or changes, asks for the correction to be removed
# or revised instead of leaving it to go stale).
use strict;
use warnings;
use Cwd qw(realpath);

my $out_dir = shift @ARGV or die "usage: merge.pl OUT_DIR SET LABEL ASM PREPROCESSED ROOT ...\n";
@ARGV % 5 == 0 or die "merge.pl: arguments come in groups of five\n";

my (%label, %struct, %const, %source, %where, %correction, @sets);

sub fail { print STDERR "kernel-layouts: FAILED: $_[0]\n"; exit 1; }

# Header paths as the files really are (mingw-w64's include directory is symlinks).
sub real_path {
    my ($path) = @_;
    my $real = realpath($path);
    fail("cannot resolve $path") unless defined $real;
    return $real;
}

# Reads the bytes that .rdata directives lay down after a label (for bit-field probes).
sub data_bytes {
    my ($lines, $start) = @_;
    my @bytes;
    my %width = ('.byte' => 1, '.value' => 2, '.word' => 2, '.2byte' => 2, '.long' => 4,
                 '.4byte' => 4, '.quad' => 8, '.8byte' => 8);
    for my $i ($start .. $#$lines) {
        my $line = $lines->[$i];
        $line =~ s/^\s+|\s+$//g;
        if ($line =~ /^\.(?:space|zero)\s+(\d+)$/) {
            push @bytes, (0) x $1;
        } elsif ($line =~ /^(\.\w+)\s+(.+)$/ && exists $width{$1}) {
            my $w = $width{$1};
            for my $v (split /\s*,\s*/, $2) {
                $v =~ /^-?\d+$/ or fail("unexpected data value '$v' in bit-field probe");
                $v += 2**(8 * $w) if $v < 0;
                push @bytes, ($v >> (8 * $_)) & 0xff for 0 .. $w - 1;
            }
        } else {
            last;
        }
    }
    return @bytes;
}

while (@ARGV) {
    my ($set, $lab, $asm, $pre, $root) = splice @ARGV, 0, 5;
    push @sets, $set;
    $label{$set} = $lab;
    open my $fh, '<', $asm or fail("cannot read $asm: $!");
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    my %prefix_source;
    for my $i (0 .. $#lines) {
        my $line = $lines[$i];
        if ($line =~ /^\@KL size (\w+) \$(\d+)$/) {
            $struct{$set}{$1}{size} = $2;
        } elsif ($line =~ /^\@KL field (\w+) ([\w.]+) \$(\d+)$/) {
            fail("$set: $1.$2 recorded twice") if exists $struct{$set}{$1}{fields}{$2};
            $struct{$set}{$1}{fields}{$2} = $3;
        } elsif ($line =~ /^\@KL const (\w+) \$(-?\d+)$/) {
            fail("$set: constant $1 is negative ($2)") if $2 < 0;
            $const{$set}{$1} = $2;
        } elsif ($line =~ /^\@KL source (\w+)\* (.+)$/) {
            fail("$set: source of $1* given twice") if exists $prefix_source{$1};
            $prefix_source{$1} = $2;
        } elsif ($line =~ /^\@KL source (\w+) (.+)$/) {
            fail("$set: source of $1 given twice") if exists $source{$set}{$1};
            $source{$set}{$1} = $2;
        } elsif ($line =~ /^\@KL corrects (\w+) (\w+) (\S+) \$(-?\d+) (.+)$/) {
            fail("$set: only documented.c can state a documented correction ($1)") if $set ne 'documented';
            fail("$set: correction of $2's $1 stated twice") if exists $correction{$1}{$2};
            fail("$set: correction of $2's $1: header value $4 is negative") if $4 < 0;
            $correction{$1}{$2} = { header => $3, value => $4, how => $5 };
        } elsif ($line =~ /^\@KL/) {
            fail("$set: unparsed probe line: $line");
        } elsif ($line =~ /^kl_bf__(\w+?)__(\w+):$/) {
            my ($type, $field) = ($1, $2);
            my @bytes = data_bytes(\@lines, $i + 1);
            my ($first) = grep { $bytes[$_] } 0 .. $#bytes;
            fail("$set: bit-field probe $type.$field has no set bit") unless defined $first;
            $struct{$set}{$type}{bitfield_bytes}{$field} = scalar @bytes;
            $struct{$set}{$type}{fields}{$field} = $first;
        }
    }
    for my $name (keys %{ $const{$set} }) {
        next if exists $source{$set}{$name};
        my @prefixes = sort grep { index($name, $_) == 0 } keys %prefix_source;
        fail("$set: $name matches the source prefixes " . join(', ', map { "$_*" } @prefixes))
            if @prefixes > 1;
        $source{$set}{$name} = $prefix_source{ $prefixes[0] } if @prefixes;
    }
    for my $type (keys %{ $struct{$set} }) {
        my $s = $struct{$set}{$type};
        fail("$set: $type has fields but no size") unless defined $s->{size};
        for my $field (keys %{ $s->{fields} }) {
            fail("$set: $type.$field at $s->{fields}{$field} lies outside the $s->{size}-byte structure")
                if $s->{fields}{$field} >= $s->{size};
        }
        for my $field (keys %{ $s->{bitfield_bytes} // {} }) {
            fail("$set: bit-field probe $type.$field laid down $s->{bitfield_bytes}{$field} bytes, not $s->{size}")
                if $s->{bitfield_bytes}{$field} != $s->{size};
        }
        delete $s->{bitfield_bytes};
    }

    # The header that defines each item: the last #define of a macro, else the first use of the
    # name as a token (C requires a declaration before any use).
    if ($pre ne '-') {
        my %wanted = map { $_ => 1 } (keys %{ $struct{$set} }, keys %{ $const{$set} // {} });
        my (%macro_file, %token_file);
        my $file = '';
        open my $ph, '<', $pre or fail("cannot read $pre: $!");
        while (my $line = <$ph>) {
            if ($line =~ /^# \d+ "([^"]*)"/) {
                $file = $1;
            } elsif ($line =~ /^#define (\w+)/) {
                $macro_file{$1} = $file if $wanted{$1};
            } elsif ($line !~ /^#/) {
                for my $token ($line =~ /\b([A-Za-z_]\w*)\b/g) {
                    $token_file{$token} //= $file if $wanted{$token};
                }
            }
        }
        close $ph;
        for my $name (keys %wanted) {
            my $found = $macro_file{$name} // $token_file{$name}
                // fail("$set: cannot find the header that defines $name");
            fail("$set: $name is defined by the probe itself ($found), not by a header")
                if $found !~ /\.h$/;
            my $path = real_path($found);
            if ($root ne '-') {
                my $r = real_path($root);
                $r .= '/' unless $r =~ m{/$};
                index($path, $r) == 0 or fail("$set: $name comes from $path, outside $r");
                $path = substr($path, length $r);
            }
            $where{$set}{$name} = $path;
        }
    }
}

sub order {
    my ($name) = @_;
    my @pref = $name =~ /^FLT/ ? qw(wine mingw documented) : qw(mingw wine documented);
    my %known = map { $_ => 1 } @sets;
    return grep { $known{$_} } @pref;
}

sub origin {
    my ($set, $name) = @_;
    return $source{$set}{$name} if exists $source{$set}{$name};
    my $where = $where{$set}{$name} // fail("$set: no source known for $name");
    return "$label{$set} $where";
}

my (%layout_out, %const_out, %both_structs, @both_consts, @report);

my %struct_names = map { my $s = $_; map { $_ => 1 } keys %{ $struct{$s} } } @sets;
for my $name (sort keys %struct_names) {
    my @have = grep { exists $struct{$_}{$name} } order($name);
    my %all = map { my $s = $_; map { $_ => 1 } keys %{ $struct{$s}{$name}{fields} } } @have;
    my ($primary) = grep {
        my $f = $struct{$_}{$name}{fields};
        !grep { !exists $f->{$_} } keys %all;
    } @have;
    fail("$name: no header set has every recorded field (" . join(', ', sort keys %all) . ')')
        unless defined $primary;
    my $p = $struct{$primary}{$name};
    my @checks;
    for my $other (grep { $_ ne $primary } @have) {
        my $o = $struct{$other}{$name};
        my @shared = sort grep { exists $o->{fields}{$_} } keys %{ $p->{fields} };
        for my $field (@shared) {
            next if $o->{fields}{$field} == $p->{fields}{$field};
            fail("DISAGREEMENT on $name.$field: " . origin($primary, $name) . " puts it at "
                 . "$p->{fields}{$field}, " . origin($other, $name) . " at $o->{fields}{$field}");
        }
        my @lacks = sort grep { !exists $o->{fields}{$_} } keys %{ $p->{fields} };
        my $note;
        if (@lacks) {
            $note = scalar(@shared) . ' of ' . scalar(keys %{ $p->{fields} })
                . ' fields, size not compared';
        } else {
            fail("DISAGREEMENT on sizeof($name): " . origin($primary, $name) . " says $p->{size}, "
                 . origin($other, $name) . " says $o->{size}") if $o->{size} != $p->{size};
            $note = 'all fields and size';
        }
        push @checks, origin($other, $name) . " ($note)";
        $both_structs{$name} = 1 if $other ne 'documented' && $primary ne 'documented';
        push @report, sprintf("  %-32s %s; cross-checked with %s: %s%s", $name, $primary, $other,
                              $note, @lacks ? ' (it lacks ' . join(', ', @lacks) . ')' : '');
    }
    push @report, sprintf("  %-32s %s only", $name, $primary) unless @checks;
    my $src = origin($primary, $name);
    $src .= '; cross-checked: ' . join('; ', @checks) if @checks;
    $layout_out{$name} = { size => $p->{size}, source => $src, fields => $p->{fields} };
}

sub hex_value { return sprintf('0x%x', $_[0]); }

# Documented corrections: each must still describe its header exactly.
my @corrections;
for my $name (sort keys %correction) {
    fail("the documented correction of $name has no documented value: add KL_CONST($name) and its "
         . "KL_SOURCE to documented.c") unless exists $const{documented}{$name};
    my $doc = $const{documented}{$name};
    for my $set (sort keys %{ $correction{$name} }) {
        my $c = $correction{$name}{$set};
        my $stated = "documented.c corrects $set $c->{header}'s $name: " . hex_value($c->{value})
            . " ($c->{how})";
        fail("$stated, but no header set '$set' is probed") unless exists $label{$set};
        fail("$stated, but $label{$set} does not define $name (not probed, or gone): remove the "
             . "correction from documented.c") unless exists $const{$set}{$name};
        my $got = $const{$set}{$name};
        my $file = $where{$set}{$name} // fail("$set: no header known for $name");
        fail("STALE CORRECTION: $stated; now " . origin($set, $name) . ' says ' . hex_value($got)
             . ", the documented value: the header was fixed, remove the correction from "
             . "documented.c") if $got == $doc;
        fail("$stated, but " . origin($set, $name) . ' says ' . hex_value($got)
             . ': the correction no longer describes the header; check the header and revise or '
             . 'remove the correction in documented.c') if $got != $c->{value};
        fail("$stated, but $label{$set} defines $name in $file, not in $c->{header}: revise the "
             . "correction in documented.c") if (split m{/}, $file)[-1] ne $c->{header};
        push @corrections, sprintf("  %-32s %s (%s) in %s -> %s, %s", $name, hex_value($got),
                                   $c->{how}, origin($set, $name), hex_value($doc),
                                   origin('documented', $name));
    }
}

my %const_names = map { my $s = $_; map { $_ => 1 } keys %{ $const{$s} // {} } } @sets;
my %const_by_sets;
for my $name (sort keys %const_names) {
    my @have = grep { exists $const{$_}{$name} } order($name);
    my $corrected = $correction{$name} // {};
    my $primary = %$corrected ? 'documented' : $have[0];
    my @others = grep { $_ ne $primary && !exists $corrected->{$_} } @have;
    for my $other (@others) {
        next if $const{$other}{$name} == $const{$primary}{$name};
        fail("DISAGREEMENT on $name: " . origin($primary, $name) . " says $const{$primary}{$name}, "
             . origin($other, $name) . " says $const{$other}{$name}");
    }
    my @checks = map { origin($_, $name) } @others;
    push @both_consts, $name
        if !%$corrected && grep({ $_ eq 'wine' } @have) && grep({ $_ eq 'mingw' } @have);
    my $combo = join('+', $primary, @others);
    $combo .= ' correcting ' . join('+', sort keys %$corrected) if %$corrected;
    push @{ $const_by_sets{$combo} }, $name;
    my $src = origin($primary, $name);
    if (%$corrected) {
        $src .= ' = ' . hex_value($const{$primary}{$name});
        $src .= '; ' . origin($_, $name) . ' disagrees (' . hex_value($const{$_}{$name}) . ", "
            . $correction{$name}{$_}{how} . ')' for sort keys %$corrected;
    }
    $src .= '; cross-checked: ' . join('; ', @checks) if @checks;
    $const_out{$name} = { value => $const{$primary}{$name}, source => $src };
}

# The review finding this table exists for: POINTER_ALIGNMENT must be honoured.
my %fsctl = (OutputBufferLength => 0, InputBufferLength => 8, FsControlCode => 16, SystemBuffer => 24);
for my $field (sort keys %fsctl) {
    my $got = $layout_out{FLT_PARAMETERS}{fields}{"FileSystemControl.Buffered.$field"};
    fail("FLT_PARAMETERS.FileSystemControl.Buffered.$field is " . ($got // 'missing')
         . ", not $fsctl{$field} (POINTER_ALIGNMENT lost?)") unless defined $got && $got == $fsctl{$field};
}

sub json_string {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
    return "\"$s\"";
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or fail("cannot write $path: $!");
    print {$fh} $text;
    close $fh or fail("cannot write $path: $!");
}

my @items;
for my $name (sort keys %layout_out) {
    my $l = $layout_out{$name};
    my @fields = map { '      ' . json_string($_) . ": $l->{fields}{$_}" } sort keys %{ $l->{fields} };
    push @items, '  ' . json_string($name) . ": {\n"
        . "    \"size\": $l->{size},\n"
        . '    "source": ' . json_string($l->{source}) . ",\n"
        . "    \"fields\": {\n" . join(",\n", @fields) . "\n    }\n  }";
}
write_file("$out_dir/kernel-layouts.json", "{\n" . join(",\n", @items) . "\n}\n");

@items = map {
    '  ' . json_string($_) . ": {\n"
        . "    \"value\": $const_out{$_}{value},\n"
        . '    "source": ' . json_string($const_out{$_}{source}) . "\n  }"
} sort keys %const_out;
write_file("$out_dir/kernel-constants.json", "{\n" . join(",\n", @items) . "\n}\n");

print "kernel-layouts: structures (taken from; cross-check):\n", map { "$_\n" } @report;
print "kernel-layouts: structures cross-checked by both header sets (wine and mingw-w64): ",
    join(', ', sort keys %both_structs), "\n";
print "kernel-layouts: constants by header sets that define them:\n";
for my $combo (sort keys %const_by_sets) {
    my @names = @{ $const_by_sets{$combo} };
    printf "  %-28s %3d: %s\n", $combo, scalar @names, join(' ', @names);
}
print "kernel-layouts: documented corrections (the documented value replaces the header's):\n",
    @corrections ? map { "$_\n" } @corrections : "  (none)\n";
printf "kernel-layouts: %d structures, %d constants (%d cross-checked by both header sets, %d "
    . "documented corrections)\n", scalar(keys %layout_out), scalar(keys %const_out),
    scalar @both_consts, scalar @corrections;
